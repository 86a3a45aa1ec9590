"""Opt-in speed paths: code that computes what a plain path computes, in fewer, bigger steps.

Each one is selected by its algorithm in one visible line, through an option (PPO's, DQN's,
SAC's and TD3's `algo.fast_path: auto|on|off`), and is held to its plain reference by
tests/test_fast_paths.py.
Nothing else in rlrun imports this package. Floors: it sits beside `rl/`, above `nets/`.

- `ppo_cpu`: PPO on a CPU with a tanh or relu MLP (the written-out network backward, the
  one-node numpy objective, the numpy rollout step and the packed Adam).
- `dqn_cpu`: DQN on a CPU with a relu or tanh MLP (the written-out network backward into one
  packed gradient, the numpy TD target and Huber gradient), bit-equal to the plain update.
- `sac_cpu`: SAC v2 on a CPU with relu MLPs (the critics' and actor's backward written out,
  the squashed Gaussian's gradient in closed form), equal to the plain steps up to rounding.
- `td3_cpu`: TD3 and DDPG on a CPU with relu MLPs (the stacked critics' and the actor's
  backward written out, narrow layers transposed, packed Adam and Polyak), equal to the plain
  steps up to rounding.
- `option`: `choose`, what `algo.fast_path` (auto/on/off, with `algo.compile`) means.
- `flat`: `FlatParams`, a module's parameters and gradients as views of one tensor each
  (`flat_data`: a target network's parameters alone).
"""
