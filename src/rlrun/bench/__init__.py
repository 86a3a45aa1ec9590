"""`rlrun-bench`: the CPU benchmark suite, run through rlrun's own sweep command, judged
against the references in one data file, with the report's statistics.

    rlrun-bench                                   # every pair, 5 seeds -> bench/
    rlrun-bench --only ppo/CartPole-v1 --seeds 10
    rlrun-bench hydra/launcher=joblib             # Hydra overrides pass through to `rlrun -m`

Modules, one job each: `suite` (the pairs, their budgets and extras), `references` (the
data file references.yaml, read safely), `runner` (the pairs as `rlrun -m` sweeps, SB3
alternating with them under --vs sb3), `sb3` (the same hyperparameters as SB3 models),
`verdict` (PASS/FAIL/UNSURE from the IQM's CI), `output` (bench.md, bench.json, the figure),
`cli` (the command). See docs/benchmark.md.
"""
