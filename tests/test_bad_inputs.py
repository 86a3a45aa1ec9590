"""A battery of bad inputs, each answered in one line with exit code 2 and the offending key.

Every case runs the real `rlrun.cli.main` in this process (a subprocess each would cost ~4 s
of Python and torch start-up), with Hydra's global state cleared between cases; a few at the
end run the installed console script to prove what a shell sees. Every case must fail before
training starts: one that trains to find its error is a bug.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra._internal.hydra import Hydra
from hydra.core.global_hydra import GlobalHydra

from rlrun import cli
from rlrun.core import logger as logger_mod
from rlrun.core.errors import ConfigError, DataError, NonFiniteError
from rlrun.core.run import RunContext
from rlrun.data.text_classification import split_rows
from rlrun.preflight import preflight
from rlrun.train import train

from .conftest import compose_cfg, rlrun_cli

NO_GPU = not torch.cuda.is_available()

# the network of the algo.init_from source run that `data` trains (issue 28's cases)
TINY_NET = ["network.d_model=32", "network.n_layers=1", "network.n_heads=2",
            "network.block_size=16", "network.d_ff=64"]


# (command line, a piece of the message: the offending key or value). "{data}" is a folder
# of prepared bad files (see `data`).
CASES: list[tuple[list[str], str]] = [
    # ---- root keys, syntax, groups ------------------------------------------------------
    (["seed=-1"], "seed=-1"),
    (["seed=99999999999999999999999"], "seed=99999999999999999999999"),
    (["seed=abc"], "seed='abc'"),
    (["deterministic=maybe"], "deterministic"),
    (["checkpoint_every_s=-1"], "checkpoint_every_s=-1"),
    (["checkpoint_every_s=nan"], "checkpoint_every_s"),
    (["threads=0"], "threads=0"),
    (["objective.stat=median"], "objective.stat='median'"),
    (["objective.metric=nope/x"], "objective.metric='nope/x'"),
    (["objective.metric=average_reward"], "objective.metric='average_reward'"),
    (["objective.metirc=bandit/x"], "did you mean objective.metric"),
    (["+foo=1"], "foo is not an rlrun option"),
    (["+sed=1"], "did you mean seed"),
    (["sed=1"], "did you mean seed"),
    (["foo=1"], "foo is not an option of rlrun"),
    (["=1"], "'=1'"),
    (["="], "'='"),
    (["seed"], "'seed'"),
    (["algo==x"], "'algo==x'"),
    (["algo.epsilon=[1,"], "algo.epsilon=[1,"),
    (["~algo.foo"], "algo.foo"),
    (["+algo.epsilon=0.2"], "algo.epsilon is already an option"),
    (["++foo=1"], "foo is not an rlrun option"),
    (["++algo.epsilonn=0.1"], "did you mean algo.epsilon"),
    (["resume=/nonexistent/run"], "resume=/nonexistent/run"),
    (["algo=foo"], "algo/foo"),
    (["env=nope"], "env/nope"),
    (["network=nope"], "network/nope"),
    (["device=tpu"], "device/tpu"),
    (["logger=wandb"], "logger/wandb"),
    (["experiment=nope"], "experiment/nope"),
    (["network=null"], "network=null: network is a config group"),
    (["algo=lm", "~network"], "algo=lm builds its networks from a network config: drop the"
                              " ~network override"),
    (["hparams_search=nope"], "hparams_search/nope"),
    (["-m", "seed=0,1", "algo.epsilonn=0.1"], "did you mean algo.epsilon"),
    # ---- logger --------------------------------------------------------------------------
    (["logger.progress=bogus"], "logger.progress='bogus'"),
    (["logger.progres=none"], "did you mean logger.progress"),
    (["logger.video_fps=0"], "logger.video_fps=0"),
    (["logger.print_every_s=0"], "logger.print_every_s"),
    (["logger.tensorboard=maybe"], "logger.tensorboard"),
    (["logger.print_every_s=inf"], "logger.print_every_s=inf"),
    # ---- bandits: epsilon_greedy, ucb, gradient_bandit; bandit testbeds -------------------
    (["algo.epsilon=1.5"], "algo.epsilon=1.5"),
    (["algo.epsilon=nan"], "algo.epsilon=nan"),
    (["algo.epsilonn=0.1"], "did you mean algo.epsilon"),
    (["algo.step_size=-0.1"], "algo.step_size=-0.1"),
    (["algo.initial_value=nan"], "algo.initial_value=nan"),
    (["algo=ucb", "algo.c=nan"], "algo.c=nan"),
    (["algo=ucb", "algo.c=-1"], "algo.c=-1"),
    (["algo=ucb", "algo.epsilon=0.1"], "algo.epsilon is not an option of algo=ucb"),
    (["algo=gradient_bandit", "algo.step_size=0"], "algo.step_size=0"),
    (["algo=gradient_bandit", "algo.baselin=false"], "algo.baselin"),
    (["env.k=0"], "env.k=0"),
    (["env.num_runs=-3"], "env.num_runs=-3"),
    (["env.mean=inf"], "env.mean=inf"),
    (["env.walk_std=nan"], "env.walk_std=nan"),
    (["env.nmu_runs=3"], "did you mean env.num_runs"),
    (["env.nonstationary=maybe"], "env.nonstationary"),
    (["env=contextual_bandit", "env.contexts=0"], "env.contexts=0"),
    (["network=mlp"], "network="),
    (["env=CartPole-v1"], "env=CartPole-v1"),
    # ---- tabular TD control and prediction; tabular envs ---------------------------------
    (["algo=q_learning", "algo.epsilon=2"], "algo.epsilon=2"),
    (["algo=q_learning", "algo.step_size=0"], "algo.step_size=0"),
    (["algo=q_learning", "algo.episodes=0"], "algo.episodes=0"),
    (["algo=q_learning", "algo.initial_value=nan"], "algo.initial_value=nan"),
    (["algo=q_learning", "algo.method=foo"], "algo.method"),
    (["algo=q_learning", "env=Pendulum-v1"], "env=Pendulum-v1"),
    (["algo=q_learning", "env=bandit_testbed"], "env=bandit_testbed"),
    (["algo=q_learning", "env.num_runs=0"], "env.num_runs=0"),
    (["algo=q_learning", "env.max_steps=0"], "env.max_steps=0"),
    (["algo=q_learning", "env.id=rlrun/Nope-v0"], "env.id"),
    (["algo=q_learning", "+env.kwargs.foo=1"], "env.kwargs"),
    (["algo=sarsa", "algo.epsilon=-0.1"], "algo.epsilon=-0.1"),
    (["algo=sarsa", "env=CartPole-v1"], "env=CartPole-v1"),
    (["algo=expected_sarsa", "algo.step_size=inf"], "algo.step_size=inf"),
    (["algo=double_q_learning", "algo.episodes=-1"], "algo.episodes=-1"),
    (["algo=mc_constant_alpha", "algo.step_size=0"], "algo.step_size=0"),
    (["algo=td0", "algo.method=td2"], "algo.method='td2'"),
    (["algo=td0", "algo.step_size=nan"], "algo.step_size=nan"),
    (["algo=td0", "env.walk_std=nan"], "env.walk_std"),
    (["algo=td0", "algo.initial_value=inf"], "algo.initial_value=inf"),
    (["algo=td0", "objective.metric=charts/episodic_return"], "objective.metric"),
    # ---- dynamic programming, Monte Carlo, n-step TD; the chapter 3-5 tasks ---------------
    (["algo=value_iteration", "env.id=Blackjack-v1"], "Blackjack-v1 has no tabular model"),
    (["algo=policy_iteration", "env=CartPole-v1"], "env=CartPole-v1"),
    (["algo=value_iteration", "algo.gamma=1"], "algo.gamma=1 on env=gridworld_3_5"),
    (["algo=policy_evaluation", "env=gridworld_3_5", "algo.gamma=1"],
     "continuing task with no terminal state"),
    (["algo=policy_evaluation", "algo.theta=0"], "algo.theta=0"),
    (["algo=value_iteration", "algo.theta=-1e-3"], "algo.theta=-0.001"),
    (["algo=value_iteration", "algo.episodes=3"], "its budget is algo.max_iterations"),
    (["algo=n_step_td", "algo.n=0"], "algo.n=0"),
    (["algo=n_step_td", "env=random_walk_19", "algo.step_size=2"], "algo.step_size=2"),
    (["algo=n_step_td", "algo.study_n=[1,2]"], "algo.study_n and algo.study_step_size"),
    (["algo=policy_evaluation", "env=small_gridworld_4_1", "algo.policy=file",
      "algo.policy_file={data}/policy_15x4.npy"], "expected (16, 4)"),
    (["algo=policy_evaluation", "env=small_gridworld_4_1", "algo.policy=file",
      "algo.policy_file={data}/always_up.npy"], "never ends an episode"),
    (["algo=policy_evaluation", "algo.policy=greedy"], "algo.policy=greedy reads"),
    (["algo=policy_evaluation", "algo.policy=file", "algo.policy_file={data}/nope.json"],
     "no such file"),
    (["algo=policy_evaluation", "algo.snapshots=[1]"], "needs algo.method=sweep"),
    (["algo=policy_iteration", "algo.initial_action=20"], "algo.initial_action=20"),
    (["algo=policy_iteration", "env=jacks_car_rental", "env.max_poisson=0"],
     "env.max_poisson=0"),
    (["algo=value_iteration", "env=gamblers_problem", "env.p_heads=1"], "env.p_heads=1"),
    (["algo=mc_prediction", "env=blackjack", "env.num_runs=0"], "env.num_runs=0"),
    (["algo=mc_prediction", "algo.episodes=0"], "algo.episodes=0"),
    (["algo=mc_control_es", "algo.batch=0"], "algo.batch=0"),
    (["algo=mc_off_policy", "algo.start_state=212"], "algo.start_state=212"),
    (["algo=mc_off_policy", "algo.behaviour_epsilon=0"], "algo.behaviour_epsilon=0"),
    # ---- SAC -----------------------------------------------------------------------------
    (["algo=sac", "algo.batch_size=1000", "algo.buffer_size=100"], "algo.batch_size=1000"),
    (["algo=sac", "algo.learning_starts=100", "algo.total_steps=50"],
     "algo.learning_starts=100"),
    (["algo=sac", "algo.tau=0"], "tau=0"),
    (["algo=sac", "algo.alpha=nan"], "algo.alpha=nan"),
    (["algo=sac", "algo.variant=v3"], "algo.variant='v3'"),
    (["algo=sac", "algo.noise_rho=1.0"], "algo.noise_rho=1"),  # 1.0 shows as 1 (%g)
    (["algo=sac", "algo.polcy_lr=1"], "did you mean algo.policy_lr"),
    (["algo=sac", "env=CartPole-v1"], "env=CartPole-v1"),
    (["algo=sac", "network=unet"], "network=unet"),
    (["algo=sac", "network=transformer"], "network=transformer"),
    (["algo=sac", "network=encoder"], "network=encoder"),
    (["algo=sac", "network.hidden_sizes=[0]"], "network.hidden_sizes"),
    (["algo=sac", "network.activation=nope"], "network.activation"),
    (["algo=sac", "objective.metric=bandit/average_reward"], "objective.metric"),
    (["algo=sac", "env.id=Pendulum-v9"], "Pendulum-v9"),
    # ---- DQN -----------------------------------------------------------------------------
    (["algo=dqn", "algo.batch_size=1000", "algo.buffer_size=100"], "algo.batch_size=1000"),
    (["algo=dqn", "algo.learning_starts=100", "algo.total_steps=100"],
     "algo.learning_starts=100"),
    (["algo=dqn", "algo.start_e=2"], "algo.start_e=2"),
    (["algo=dqn", "algo.learning_rate=nan"], "algo.learning_rate=nan"),
    (["algo=dqn", "algo.gamma=inf"], "algo.gamma=inf"),
    (["algo=dqn", "env=Pendulum-v1"], "env=Pendulum-v1"),
    (["algo=dqn", "network=unet"], "network=unet"),
    # ---- TD3 / DDPG ----------------------------------------------------------------------
    (["algo=td3", "algo.batch_size=1000", "algo.buffer_size=100"], "algo.batch_size=1000"),
    (["algo=td3", "algo.learning_starts=30000", "algo.total_steps=20000"],
     "algo.learning_starts=30000"),
    (["algo=td3", "algo.exploration_noise=-1"], "algo.exploration_noise=-1"),
    (["algo=td3", "algo.policy_noise=nan"], "algo.policy_noise=nan"),
    (["algo=td3", "env=CartPole-v1"], "env=CartPole-v1"),
    (["algo=ddpg", "algo.batch_size=1000", "algo.buffer_size=100"], "algo.batch_size=1000"),
    (["algo=ddpg", "algo.learning_starts=20000", "algo.total_steps=20000"],
     "algo.learning_starts=20000"),
    (["algo=ddpg", "network=transformer"], "network=transformer"),
    # ---- PPO -----------------------------------------------------------------------------
    (["algo=ppo", "algo.num_minibatches=1000", "algo.num_steps=4"],
     "algo.num_minibatches=1000"),
    (["algo=ppo", "algo.gae_lambda=2"], "gae_lambda"),
    (["algo=ppo", "algo.target_kl=-1"], "algo.target_kl=-1"),
    (["algo=ppo", "algo.learning_rate=inf"], "algo.learning_rate=inf"),
    (["algo=ppo", "algo.ent_coef=nan"], "algo.ent_coef=nan"),
    (["algo=ppo", "network=transformer"], "network=transformer"),
    (["algo=ppo", "env=bandit_testbed"], "env=bandit_testbed"),
    (["algo=ppo", "env.num_envs=0"], "env.num_envs=0"),
    (["algo=ppo", "env.vectorization=threads"], "env.vectorization='threads'"),
    (["algo=ppo", "objective.metric=moe/aux_loss"], "objective.metric"),
    # ---- A2C -----------------------------------------------------------------------------
    (["algo=a2c", "algo.optimizer=sgd"], "algo.optimizer='sgd'"),
    (["algo=a2c", "algo.num_steps=0"], "algo.num_steps=0"),
    (["algo=a2c", "algo.gamma=nan"], "algo.gamma=nan"),
    (["algo=a2c", "network=unet"], "network=unet"),
    (["algo=a2c", "env=stdlib_docs"], "env=stdlib_docs"),
    # ---- Gymnasium envs ------------------------------------------------------------------
    (["algo=sac", "env=gym", "env.id=null"], "env.id=null"),
    (["algo=ppo", "env=gym", "env.id=NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["algo=sac", "env=gym", "env.id=Pendulum-v1", "+env.kwargs.g=abc"], "env.kwargs.g='abc'"),
    (["algo=sac", "env=gym", "env.id=Pendulum-v1", "+env.kwargs.gg=1"],
     "did you mean env.kwargs.g"),
    (["algo=ppo", "env=CartPole-v1", "+env.kwargs.sutton_barto_reward=yes"],
     "env.kwargs.sutton_barto_reward='yes'"),
    (["algo=ppo", "env=gym", "env.atari.frame_skip=0"], "env.atari"),
    (["algo=ppo", "env=gym", "env.id=CartPole-v1", "env.kwargs=5"], "env.kwargs"),
    (["algo=ppo", "env=CartPole-v1", "env.foo=1"], "env.foo"),
    # ---- LM on text; transformer / MoE networks -----------------------------------------
    (["algo=lm", "algo.lr=0"], "algo.lr=0 must be > 0"),
    (["algo=lm", "algo.sample_temperature=nan"], "algo.sample_temperature=nan"),
    (["algo=lm", "algo.flop_budget=inf"], "algo.flop_budget=inf"),
    (["algo=lm", "network.ffn=mixtral", "network.top_k=0"], "network.top_k=0"),
    (["algo=lm", "network.ffn=mixtral", "network.top_k=9"], "network.top_k=9"),
    (["algo=lm", "network.top_k=2"], "network.top_k=2"),
    (["algo=lm", "network.ffn=foo"], "network.ffn='foo'"),
    (["algo=lm", "network.n_heads=3"], "network.d_model"),
    (["algo=lm", "network.d_model=nan"], "network.d_model=nan"),
    (["algo=lm", "network.n_experts=0", "network.ffn=mixtral"], "network.n_experts=0"),
    (["algo=lm", "network.capacity_factor=-1", "network.ffn=switch"],
     "network.capacity_factor=-1"),
    (["algo=lm", "network.n_kv_heads=true"], "network.n_kv_heads"),  # not MQA (issue 22)
    (["algo=lm", "network.n_kv_heads=3"], "network.n_kv_heads=3"),
    (["algo=lm", "network=mlp"], "network=mlp"),
    (["algo=lm", "network=unet"], "network=unet"),
    (["algo=lm", "env=digits"], "env=digits"),
    (["algo=lm", "env=text_file"], "env.path"),
    (["algo=lm", "env=text_file", "env.path=/nonexistent/file.txt"], "/nonexistent/file.txt"),
    (["algo=lm", "env=text_file", "env.path={data}"], "env.path="),
    (["algo=lm", "env=text_file", "env.path={data}/empty.txt"], "empty.txt"),
    (["algo=lm", "env=text_file", "env.path={data}/binary.bin"], "binary.bin"),
    (["algo=lm", "env=text_file", "env.path={data}/short.txt"], "short.txt"),
    (["algo=lm", "env.val_fraction=2"], "env.val_fraction=2"),
    (["algo=lm", "env.split_block=0"], "env.split_block=0"),
    (["algo=lm", "objective.metric=eval/return"], "objective.metric='eval/return'"),
    # classifier-free guidance (issue 25): the LM's guided samples, the labelled corpus
    (["algo=lm", "algo.sample_cfg=-1"], "algo.sample_cfg=-1 must be >= 0"),
    (["algo=lm", "algo.sample_cfg=2", "algo.sample_negative_prompt='x\u2603'"],
     "algo.sample_negative_prompt='x\u2603' holds characters outside the corpus's vocabulary:"
     " '\u2603'"),
    (["algo=lm", "algo.sample_negative_prompt=x"],
     "algo.sample_negative_prompt='x' changes nothing at sample_cfg=1"),
    (["algo=lm", "env=labelled_docstrings", "env.splits=[dev]"], "env.splits='dev'"),
    (["algo=lm", "env=labelled_docstrings", "env.source=csv", "env.path={data}/labels.csv",
      "env.text_column=review"], "env.text_column='review'"),
    (["algo=lm", "env=labelled_docstrings", "env.source=csv",
      "env.path={data}/newline_label.csv"], "holds a line break"),
    (["algo=text_classifier", "env=labelled_docstrings"], "env=labelled_docstrings"),
    # ---- LM on token shards; init_from (issue 28) -----------------------------------------
    (["algo=lm", "env=tokens"], "env.path=DIR"),
    (["algo=lm", "env=tokens", "env.path={data}/no_meta"], "but no meta.json"),
    (["algo=lm", "env=tokens", "env.path={data}/shards_char", "network.block_size=100000"],
     "network.block_size=100000 needs windows of 100001 tokens"),
    (["algo=lm", "env=tokens", "env.path={data}/shards_bpe", "algo.init_from={data}/lm_run",
      *TINY_NET], "different tokenizer than the algo.init_from run"),
    (["algo=lm", "env=tokens", "env.path={data}/shards_char", "algo.init_from={data}/lm_run",
      *TINY_NET, "network.n_layers=2", "network.ffn=mixtral"],
     "network.n_layers=2 (init_from run: 1), network.ffn=mixtral (init_from run: dense)"),
    (["algo=lm", "algo.init_from=/nonexistent/run"], "algo.init_from=/nonexistent/run"),
    (["algo=lm", "algo.init_from={data}/no_images"], "is not a run dir"),
    (["algo=lm", "algo.init_from_vocab=grow"], "algo.init_from_vocab='grow'"),
    (["algo=text_classifier", "algo.init_from={data}/lm_run"], "network.d_model=64"),
    (["algo=ddpm", "env=tokens"], "env=tokens is token shards from rlrun-prepare"),
    # ---- text classification -------------------------------------------------------------
    (["algo=text_classifier", "network.causal=true"], "network.causal=true"),
    (["algo=text_classifier", "network=transformer"], "network.causal=true"),
    (["algo=lm", "network.causal=false"], "network.causal=false"),
    (["algo=text_classifier", "env=imdb"], "env.path"),
    (["algo=text_classifier", "env=imdb", "env.path=/nonexistent/aclImdb"], "/nonexistent"),
    (["algo=text_classifier", "env=imdb", "env.path={data}/no_images"], "train/ holds no"),
    (["algo=text_classifier", "env=text_csv"], "env.path"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/labels.csv",
      "env.text_column=review"], "env.text_column='review'"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/one_class.csv"], "two classes"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/unseen.csv"], "never occur"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/binary.bin"], "binary.bin"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/header_only.csv"],
     "header_only.csv holds no rows"),
    (["algo=text_classifier", "env.tokenizer=bpe"], "env.tokenizer='bpe'"),
    (["algo=text_classifier", "env.max_len=0"], "env.max_len=0"),
    (["algo=text_classifier", "env.packages=[nosuchpkg,email]"], "nosuchpkg"),
    (["algo=text_classifier", "env=stdlib_docs"], "env=stdlib_docs"),
    (["algo=lm", "env=stdlib_docstrings"], "env=stdlib_docstrings"),
    # ---- DDPM on images; UNet ------------------------------------------------------------
    (["algo=ddpm", "algo.schedule=foo"], "algo.schedule='foo'"),
    (["algo=ddpm", "algo.beta_end=nan"], "algo.beta_end=nan"),
    (["algo=ddpm", "algo.ema_decay=2"], "algo.ema_decay=2"),
    (["algo=ddpm", "algo.sampler=foo"], "algo.sampler='foo'"),
    (["algo=ddpm", "algo.lr=-1"], "algo.lr=-1"),
    (["algo=ddpm", "algo.eta=nan"], "algo.eta=nan"),
    (["algo=ddpm", "env.size=7"], "env.size"),
    (["algo=ddpm", "env.channels=2"], "env.channels=2"),
    (["algo=ddpm", "env.fit=stretch"], "env.fit='stretch'"),
    (["algo=ddpm", "env.dataset=cifar"], "env.dataset='cifar'"),
    (["algo=ddpm", "env=mnist"], "env.path"),
    (["algo=ddpm", "env=mnist", "env.path={data}"], "env.path="),
    (["algo=ddpm", "env=image_folder"], "env.path"),
    (["algo=ddpm", "env=image_folder", "env.path=/nonexistent/images"], "/nonexistent/images"),
    (["algo=ddpm", "env=image_folder", "env.path={data}/no_images"], "no_images"),
    (["algo=ddpm", "env=image_folder", "env.path={data}/corrupt"], "bad.png"),
    (["algo=ddpm", "env=image_folder", "env.path={data}/empty.txt"], "empty.txt"),
    (["algo=ddpm", "network=mlp"], "network=mlp"),
    (["algo=ddpm", "network=transformer"], "network=transformer"),
    (["algo=ddpm", "network.groups=5"], "network.groups"),
    (["algo=ddpm", "network.ch_mult=[]"], "ch_mult"),
    (["algo=ddpm", "network.activation=nope"], "network.activation"),
    (["algo=ddpm", "network.ch=nan"], "network.ch"),
    (["algo=ddpm", "env=stdlib_docs"], "env=stdlib_docs"),
    # classifier-free guidance (issue 25)
    (["algo=ddpm", "algo.guidance=2"], "algo.guidance=2 needs conditional=true"),
    (["algo=ddpm", "algo.conditional=true", "algo.guidance=-1"], "algo.guidance=-1 must be"
                                                                   " >= 0"),
    (["algo=ddpm", "algo.p_uncond=1"], "algo.p_uncond=1 must be in [0, 1)"),
    (["algo=ddpm", "algo.p_uncond=-0.1"], "algo.p_uncond=-0.1 must be in [0, 1)"),
    (["algo=ddpm", "algo.conditional=true", "env=image_folder", "env.path={data}/flat_images"],
     "algo.conditional=true needs class labels, and env=image_folder has none"),
    # ---- nature_cnn ----------------------------------------------------------------------
    (["algo=dqn", "network=nature_cnn"],
     "env=CartPole-v1 observes vectors of shape (4,), which network._target_=rlrun.nets.cnn."
     "NatureCNN does not take (it takes images): use network=mlp"),
    (["algo=ppo", "env=Pendulum-v1", "network=nature_cnn"], "NatureCNN does not take"),
    # ---- algo.fast_path=on where the fast path cannot run ----------------------------------
    (["algo=sac", "algo.fast_path=on", "network.activation=elu"],
     "algo.fast_path=on: it needs relu activations (network.activation=elu)"),
    (["algo=ddpg", "algo.fast_path=on", "network.activation=tanh"],
     "algo.fast_path=on: it needs relu activations (network.activation=tanh)"),
    (["algo=dqn", "algo.fast_path=on", "network.activation=elu"],
     "algo.fast_path=on: it needs tanh or relu activations (network.activation=elu)"),
    (["algo=ppo", "algo.fast_path=on", "network=nature_cnn", "env=gym", "env.id=ALE/Pong-v5"],
     "algo.fast_path=on: it needs an MLP network (network=mlp)"),
    # ---- devices -------------------------------------------------------------------------
    (["device.index=abc"], "device.index"),
    (["algo=q_learning", "device=cpu", "device.index=-1"], "device"),
    # ---- launchers and sweepers ----------------------------------------------------------
    (["hydra/launcher=nonexistent"], "hydra/launcher/nonexistent"),
    (["-m", "hydra/launcher=nonexistent"], "hydra/launcher/nonexistent"),
    (["-m", "hydra/sweeper=nonexistent"], "hydra/sweeper/nonexistent"),
    (["-m", "hydra/launcher=ray"], "rlrun[ray]"),
    (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=abc"], "hydra.launcher.n_jobs"),
    (["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=abc"], "hydra.sweeper.n_trials"),
    (["-m", "hydra/launcher=submitit_local", "hydra.launcher.nodes=abc"],
     "hydra.launcher.nodes"),
    (["-m", "seed=0,,1"], "seed=0,,1"),
    # ---- a newcomer's first mistakes (issue 22, section 4) ---------------------------------
    (["seed=[0,1,2]"], "rlrun -m seed=0,1,2"),
    (["seed={a:1}"], "seed={'a': 1}"),
    (["seed=4294967296"], "seed=4294967296 must be an integer in [0, 2**32)"),
    (["threads=100000"], "threads=100000"),
    (["-m", "seed=0,1", "--cfg", "job"], "--cfg prints one composed config"),
    (["hydra/launcher=submitit_local"], "add -m"),
    (["-m", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=0"],
     "hydra.launcher.tasks_per_node=0"),
    (["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=-5"],
     "hydra.launcher.timeout_min=-5"),
    (["-m", "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=0"],
     "hydra.launcher.cpus_per_task=0"),
    (["-m", "hydra/launcher=submitit_local", "hydra.launcher.nodes=0"],
     "hydra.launcher.nodes=0"),
    (["algo=qlearning"], "did you mean algo=q_learning"),
    (["algo.total_steps=1000"], "its budget is env.steps"),
    (["algo=q_learning", "algo.total_steps=1000"], "its budget is algo.episodes"),
    (["algo=td0", "env.steps=10"], "its budget is algo.episodes"),
    (["algo=q_learning", "algo.episodes=1e3"], "must be an integer: write 1000"),
    (["algo.epsilon=abc"], "algo.epsilon=abc must be a number"),
    (["algo=ppo", "env=gym", "env.id=:CartPole-v1"], "module:EnvId"),
    (["algo=ppo", "env=gym", "env.id=no.such.module.xyz:CartPole-v1"], "cannot be imported"),
    (["algo=lm", "env=text_file", "env.path={data}/no_images"], "is a directory"),
    (["algo=lm", "env=text_file", "env.path=/dev/zero"], "not a regular file"),
    (["algo=text_classifier", "env=imdb", "env.path={data}/labels.csv"], "is a file"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/unclosed.csv"],
     "unclosed quote"),
    (["algo=text_classifier", "env=text_csv", "env.path={data}/bom.csv",
      "env.text_column=review"], "its columns are text, label"),
]
# Data errors that preflight finds (it reads the data) before a run dir exists.
# What the run finds, after its run dir exists (it says why there, as `failed`): files that
# only decoding tells apart, a text too short for the block, and a tabular task's env.id and
# env.kwargs, checked when the loop makes the env (no preflight hook makes tabular envs yet).
FOUND_BY_THE_RUN = ("/corrupt", "/short.txt", "rlrun/Nope-v0", "env.kwargs.foo")

DATA_CASES = [(argv, expected) for argv, expected in CASES
              if any(a.startswith(("env.path", "env=text_file", "env=imdb", "env=text_csv",
                                   "env=mnist", "env=image_folder", "env.packages",
                                   "algo.init_from="))
                     for a in argv)
              and "{data}/corrupt" not in " ".join(argv)  # decoded by the run, not preflight
              and "{data}/short.txt" not in " ".join(argv)]  # too short for network.block_size
# and the network and fast path found wrong for the task before a loop builds anything
DATA_CASES += [(argv, expected) for argv, expected in CASES
               if "network=nature_cnn" in argv or "algo.fast_path=on" in argv]
SUBPROCESS_CASES = [
    (["algo.epsilonn=0.1"], "did you mean algo.epsilon"),
    (["=1"], "'=1'"),
    (["seed=99999999999999999999999"], "seed=99999999999999999999999"),
    (["algo=sac", "network=unet"], "network=unet"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Bad data files: an empty file, non-UTF-8 bytes, too little text, a folder without
    images, a folder with a file that is not an image, a folder of images without class
    sub-folders; labelled CSVs with one class, with labels that only validation and test
    hold, with labels holding line breaks, and with a header but no rows."""
    root = tmp_path_factory.mktemp("bad_data")
    (root / "empty.txt").write_text("")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (root / "short.txt").write_text("too short")
    (root / "no_images").mkdir()
    (root / "no_images" / "notes.txt").write_text("no images here")
    (root / "corrupt").mkdir()
    (root / "corrupt" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rows = [(f"text number {i} about {'cats' if i % 2 else 'dogs'}", "ab"[i % 2])
            for i in range(200)]
    (root / "labels.csv").write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    (root / "header_only.csv").write_text("text,label\n")
    (root / "one_class.csv").write_text("text,label\n" + "".join(f"{t},a\n" for t, _ in rows))
    held_out = {t for part in split_rows(rows, 0.1, 0.1)[1:] for t, _ in part}
    (root / "unseen.csv").write_text("text,label\n" + "".join(
        f"{t},{'new' if t in held_out else lab}\n" for t, lab in rows))
    (root / "unclosed.csv").write_text('text,label\n"an open quote,a\n' + "".join(
        f"{t},{lab}\n" for t, lab in rows))
    (root / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (root / "labels.csv").read_bytes())
    np.save(root / "policy_15x4.npy", np.full((15, 4), 0.25))  # the 4x4 gridworld has 16
    np.save(root / "always_up.npy", np.zeros(16, dtype=np.int64))  # bumps the top wall
    (root / "newline_label.csv").write_text("text,label\n" + "".join(
        f'{t},"{lab}\n{lab}"\n' for t, lab in rows))
    from PIL import Image  # images without class sub-folders: no labels

    (root / "flat_images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 60 * i, np.uint8)).save(root / "flat_images" / f"{i}.png")
    token_shards(root)
    return root


def token_shards(root: Path) -> None:
    """rlrun-prepare shards of a little prose as characters and as BPE, a folder of shards
    without meta.json (an interrupted prepare), and an LM run on the character shards (the
    `algo.init_from` source)."""
    from rlrun.prepare import pipeline
    from rlrun.prepare.settings import Settings

    from .test_prepare import extra_docs, write_corpus

    corpus = write_corpus(root / "prose", extra_docs(12))
    for tok in ("char", "bpe"):
        pipeline.prepare([str(corpus)], Settings(out=str(root / f"shards_{tok}"), tokenizer=tok,
                                                 vocab_size=300, progress=False),
                         echo=lambda s: None)
    (root / "no_meta").mkdir()
    (root / "no_meta" / "train_000000.bin").write_bytes(bytes(64))
    train(compose_cfg(["algo=lm", "env=tokens", f"env.path={root / 'shards_char'}", *TINY_NET,
                       "algo.total_steps=2", "algo.batch_size=2", "algo.eval_batches=1",
                       "algo.sample_chars=0", "algo.attention_stats=false", "threads=1",
                       "logger.progress=none", "checkpoint_every_s=0"]),
          run_dir=root / "lm_run")


def run_main(argv: list[str], run_dir: Path, capfd) -> tuple[int, str]:
    """`rlrun.cli.main(argv)` in this process; returns (exit code, stderr)."""
    keys = {a.lstrip("+~").split("=")[0] for a in argv}
    extra = [f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={run_dir}"]
    if "resume" not in keys:  # resume= takes no other overrides
        extra += ["hydra.output_subdir=null"]  # train() saves the config: one file, not three
        extra += [f"{k}={v}" for k, v in (("logger.progress", "none"), ("threads", "1"))
                  if k not in keys]
    GlobalHydra.instance().clear()
    capfd.readouterr()
    try:
        cli.main([*argv, *extra])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    return code, capfd.readouterr().err


START_PROGRESS = RunContext.start_progress


class Trained(BaseException):
    """Raised where a loop starts training: no bad input may get that far."""


def _refuse_training(self, *args, **kwargs):
    raise Trained(f"{self.algo_name} on {self.env_name} started training")


@pytest.fixture
def in_process(monkeypatch):
    """Keep what `cli.main` changes globally (argv, env, torch threads) inside the test, and
    make a loop that starts training fail the test."""
    monkeypatch.setattr("sys.argv", ["rlrun"])
    monkeypatch.setattr(RunContext, "start_progress", _refuse_training)
    # Hydra composes every config twice: once to read hydra.mode, once to run. No case here
    # sets hydra.mode in a config (-m says it), so the first one is skipped: 2.5x faster.
    monkeypatch.setattr(Hydra, "get_mode", lambda self, config_name, overrides: None)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _check(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 3, err
    assert err.strip().splitlines()[-1].startswith("rlrun: error: "), err
    assert expected in err, err
    assert "To append to your config" not in err and "use +" not in err, err


def _id(case: tuple[list[str], str]) -> str:
    return " ".join(case[0]) or "(none)"


@pytest.mark.parametrize("argv, expected", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_one_line_exit_2(argv, expected, data, tmp_path, capfd, in_process):
    if "device=cuda" in argv and not NO_GPU:
        pytest.skip("this machine has a GPU")
    argv = [a.replace("{data}", str(data)) for a in argv]
    code, err = run_main(argv, tmp_path / "run", capfd)
    _check(code, err, expected.replace("{data}", str(data)))
    if not any(a.startswith("resume=") for a in argv) and not any(
            found in " ".join(argv) for found in FOUND_BY_THE_RUN):
        assert not list((tmp_path / "run").rglob("results.json")), "a run dir was left"


@pytest.mark.parametrize("argv, expected", DATA_CASES, ids=[_id(c) for c in DATA_CASES])
def test_data_errors_are_found_before_the_run_dir_exists(argv, expected, data, tmp_path):
    argv = [a.replace("{data}", str(data)) for a in argv]
    cfg = compose_cfg([*argv, "logger.progress=none", "threads=1"])
    with pytest.raises((DataError, ConfigError), match=re.escape(expected.replace(
            "{data}", str(data)))):
        preflight(cfg)
    with pytest.raises((DataError, ConfigError)):
        train(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_battery_probes_every_algorithm_and_env():
    """Every algorithm and task config of rlrun is the target of at least one bad input, so
    a new one cannot land unprobed; no case is written twice."""
    from rlrun.core.config import config_dir

    assert len({tuple(a) for a, _ in CASES}) == len(CASES)
    probed = {a.split("=", 1)[1] for argv, _ in CASES for a in argv
              if a.startswith(("algo=", "env="))}
    default_algo, default_env = "epsilon_greedy", "bandit_testbed"
    for group, default in (("algo", default_algo), ("env", default_env)):
        names = {p.stem for p in (config_dir() / group).glob("*.yaml")}
        missing = sorted(names - probed - {default} - {"gym"})
        assert not missing or group == "env" and set(missing) <= ENVS_RUN_BY_OTHER_TESTS, \
            f"{group} configs no bad input targets: {missing}"


# Gymnasium tasks whose configs only name an id; test_configs composes and validates them.
ENVS_RUN_BY_OTHER_TESTS = {"Acrobot-v1", "CliffWalking-v1", "FrozenLake-v1", "HalfCheetah-v5",
                           "LunarLander-v3", "LunarLanderContinuous-v3",
                           "MountainCarContinuous-v0", "Reacher-v5", "Taxi-v4", "digits",
                           "fashion_mnist", "random_walk", "stdlib_docstrings",
                           "windy_gridworld", "cliff_walking_book", "maximization_bias",
                           "contextual_bandit", "text_file", "text_csv", "image_folder"}


def test_video_without_its_extra_fails_before_training(tmp_path, capfd, in_process,
                                                        monkeypatch):
    monkeypatch.setattr(logger_mod, "missing_video_modules", lambda: ["pygame"])
    code, err = run_main(["algo=ppo", "env=CartPole-v1", "logger.video=true"],
                         tmp_path / "run", capfd)
    _check(code, err, "logger.video=true needs the video extra")
    assert "rlrun[video]" in err
    run = tmp_path / "run"  # refused by the preflight: no record, no checkpoint, no events
    assert not (run / "results.json").exists()
    assert not (run / "checkpoints").exists() and not list(run.glob("events.*"))


DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
DOC_EXAMPLES = re.findall(r"^ *\$ rlrun (.+)\n *(rlrun: error: .+)$", DOCS.read_text(), re.M)


@pytest.mark.parametrize("command, answer", DOC_EXAMPLES)
def test_docs_examples_say_what_they_show(command, answer, tmp_path, capfd, in_process):
    code, err = run_main(command.split(), tmp_path / "run", capfd)
    assert code == 2 and err.strip() == answer.strip()


def test_docs_have_examples():
    assert len(DOC_EXAMPLES) >= 3


@pytest.mark.parametrize("saved", [False, True])
def test_nan_loss_error_says_whether_a_checkpoint_is_kept(tmp_path, saved):
    ckpt = tmp_path / "checkpoints" / "last.pt"
    if saved:
        ckpt.parent.mkdir()
        ckpt.write_bytes(b"saved before")
    log = logger_mod.Logger(tmp_path, logger_mod.LoggerConfig(tensorboard=False),
                            checkpoint=ckpt)
    log.scalar("losses/policy", 1.0, 1)
    with pytest.raises(NonFiniteError) as e:
        log.scalar("losses/policy", float("nan"), 2)
    kept = "the last good checkpoint is kept" in str(e.value)
    assert kept == saved and ("no checkpoint was saved" in str(e.value)) != saved


def test_objective_metric_never_logged_fails_the_run(tmp_path, capfd, in_process,
                                                    monkeypatch):
    """A tag of a group the algorithm logs, but not one it logged: known only at the end."""
    monkeypatch.setattr(RunContext, "start_progress", START_PROGRESS)  # this one trains
    code, err = run_main(["env.steps=10", "env.num_runs=5", "objective.metric=bandit/nope"],
                         tmp_path / "run", capfd)
    _check(code, err, "objective.metric='bandit/nope' was never logged")


@pytest.mark.parametrize("argv, expected", SUBPROCESS_CASES,
                         ids=[_id(c) for c in SUBPROCESS_CASES])
def test_console_script_one_line_exit_2(argv, expected, tmp_path, monkeypatch):
    # this checkout's code, even where another checkout is the installed one
    monkeypatch.setenv("PYTHONPATH", str(Path(cli.__file__).resolve().parents[1]))
    out = rlrun_cli([*argv, "logger.progress=none", f"hydra.run.dir={tmp_path / 'run'}"],
                    cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("rlrun: error: "), out.stderr
    assert expected in out.stderr
