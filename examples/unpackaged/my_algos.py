"""`algo=my_ucb`: an algorithm of your own, in a plain module beside a config dir (no package).

    cd examples/unpackaged
    PYTHONPATH=. rlrun --config-dir conf algo=my_ucb              # 2000 runs x 1000 steps
    PYTHONPATH=. rlrun --config-dir conf algo=my_ucb algo.c=1 env.steps=300
    PYTHONPATH=. rlrun --config-dir conf --help                   # algo: ... my_ucb ...

conf/algo/my_ucb.yaml names this module's `run` (the loop) and `MyUCBConfig` (its settings)
by dotted path; `PYTHONPATH=.` lets Python import them and `--config-dir conf` adds the
option `algo=my_ucb` next to rlrun's own (docs/extending.md, "Unpackaged config dirs").

The algorithm is upper-confidence-bound action selection (Sutton & Barto, section 2.7),

    A_t = argmax_a [ Q_t(a) + c sqrt(ln t / N_t(a)) ],  an untried arm (N_t(a) = 0) first,

with ties broken at random and Q updated by sample averages (or a constant step size), on
rlrun's k-armed testbed, all `env.num_runs` independent problems in the same NumPy
operations. It draws from the same two random streams as rlrun's own bandit loop, so with the
same seed it faces the very testbed that `algo=ucb` and `algo=epsilon_greedy` face (common
random numbers), and it logs the same tags: its numbers line up with theirs in TensorBoard
and `rlrun-report`. Written only against rlrun's loop contract (`ctx.track`, `ctx.resume`,
`ctx.start_progress`, `ctx.tick`, `ctx.finish`), so checkpoints, Ctrl-C and `resume=` work
as for rlrun's own loops (resume with the same `--config-dir conf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rlrun.core.schema import AlgoSchema, AlgoSpec, opt


@dataclass
class MyUCBConfig(AlgoSchema):
    """The settings of algo=my_ucb: each with its default, help and bounds, which rlrun
    checks a value against before the run (`algo.c=-1` is one line naming the bound)."""

    # What rlrun reads before and after a run; task_kinds, objective and goal are required.
    spec: ClassVar[AlgoSpec] = AlgoSpec(
        task_kinds=("bandit",),  # env=bandit_testbed, env=contextual_bandit
        objective="bandit/average_reward_all_steps", goal="max",  # what a sweep ranks by
        headline="bandit/average_reward",  # shown in the progress bar
        logged_tags=("bandit/*",), uses_torch=False, uses_network=False,
        budget="env.steps")  # what sets its length

    c: float = opt(2.0, "exploration weight c in Q + c sqrt(ln t / N)", ge=0)
    step_size: float | None = opt(None, "constant step size alpha; null: sample averages"
                                        " (1/N)", gt=0, le=1)
    initial_value: float = opt(0.0, "Q1 of every arm")


def run(ctx) -> None:
    """Play `env.steps` steps on `env.num_runs` independent problems; log run averages."""
    from rlrun.envs.bandit import BanditTestbed
    from rlrun.rl.policy import argmax_random_ties

    cfg, env_cfg = ctx.algo, ctx.env
    env_seed, agent_seed = np.random.SeedSequence(ctx.seed).spawn(2)  # as rlrun's bandits
    bandit = BanditTestbed(env_cfg, np.random.default_rng(env_seed))
    rng = np.random.default_rng(agent_seed)  # breaks ties between maximal arms
    shape = (env_cfg.k, bandit.n_rows)  # arms x (run, context) rows
    table = {"q": np.full(shape, float(cfg.initial_value)), "n": np.zeros(shape),
             "t": np.zeros(bandit.n_rows)}  # estimates, counts, steps seen per row

    ctx.track(env=bandit, table=table, rng=rng)  # what a checkpoint holds
    ctx.resume()  # on resume=: all of it loaded back in place, and ctx.step

    log, total = ctx.logger, env_cfg.steps
    ctx.start_progress(total)
    q, n, t = table["q"], table["n"], table["t"]
    while ctx.step < total:
        step = ctx.step + 1
        rows = bandit.observe()  # the row each run faces now (its context)
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = cfg.c * np.sqrt(np.log(t[rows] + 1.0) / n[:, rows])
        values = np.where(n[:, rows] > 0, q[:, rows] + bonus, np.inf)
        actions = argmax_random_ties(values, rng)
        rewards, optimal = bandit.step(rows, actions)
        n[actions, rows] += 1.0
        alpha = 1.0 / n[actions, rows] if cfg.step_size is None else cfg.step_size
        q[actions, rows] += alpha * (rewards - q[actions, rows])
        t[rows] += 1.0

        avg_reward = float(rewards.mean())
        log.scalar("bandit/average_reward", avg_reward, step)
        log.scalar("bandit/optimal_action", float(optimal.mean()), step)
        if ctx.tick(step, avg_reward):  # sets ctx.step; True: Ctrl-C, a checkpoint is saved
            break

    def summary() -> None:  # one number per run, what the spec's objective names
        for tag in ("bandit/average_reward", "bandit/optimal_action"):
            series = log.series[tag]
            log.scalar(f"{tag}_all_steps", sum(series) / len(series), total)

    ctx.finish(final=summary)
