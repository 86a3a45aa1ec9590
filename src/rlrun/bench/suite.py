"""The pairs of the CPU suite: which algorithm on which task, at which budget, needing
which extra; and picking them by name (`--only`)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from rlrun.core.config import did_you_mean
from rlrun.core.errors import ConfigError


@dataclass(frozen=True)
class Pair:
    """One row of the table: a deep RL pair (`algo/env`, seeds x budget) or one of the
    book's figures (`sutton_barto/figX_Y`, an exact check of one sweep)."""

    name: str
    kind: str  # "rl" or "exact"
    overrides: tuple[str, ...]
    extra: str | None = None  # the rlrun extra the task needs (pip install 'rlrun[extra]')
    module: str | None = None  # the module that extra provides
    smoke: tuple[str, ...] = field(default=())  # what --smoke adds: a few hundred steps

    @property
    def algo(self) -> str:
        return self.name.split("/")[0]

    @property
    def env(self) -> str:
        return self.name.split("/")[1]


def _rl(name: str, budget: int, smoke: tuple[str, ...] = (), extra: str | None = None,
        module: str | None = None) -> Pair:
    algo, env = name.split("/")
    # eval_every stays the tuned preset's: the curves are the figure's
    return Pair(name, "rl", (f"algo={algo}", f"env={env}", f"algo.total_steps={budget}"),
                extra, module, ("algo.total_steps=400", "algo.eval_every=200",
                                "algo.eval_episodes=2", *smoke))


# Budgets are the references' (references.yaml `budget`, rl-zoo's n_timesteps); a test
# holds the two equal. --smoke: off-policy learning starts within the few steps (100 updates).
SUITE: tuple[Pair, ...] = (
    _rl("ppo/CartPole-v1", 100_000),
    _rl("a2c/CartPole-v1", 500_000),
    _rl("dqn/CartPole-v1", 50_000, ("algo.learning_starts=100", "algo.train_frequency=16",
                                    "algo.gradient_steps=4")),
    _rl("sac/Pendulum-v1", 20_000, ("algo.learning_starts=300",)),
    _rl("td3/Pendulum-v1", 20_000, ("algo.learning_starts=300",)),
    _rl("ddpg/Pendulum-v1", 20_000, ("algo.learning_starts=300",)),
    _rl("ppo/Acrobot-v1", 1_000_000, ("env.num_envs=2", "algo.num_steps=64",
                                      "algo.num_minibatches=2")),
    _rl("ppo/LunarLander-v3", 1_000_000, ("env.num_envs=2", "algo.num_steps=64",
                                          "algo.num_minibatches=2"),
        extra="box2d", module="Box2D"),
    Pair("sutton_barto/fig2_2", "exact", ("experiment=sutton_barto/fig2_2",),
         smoke=("env.num_runs=50", "env.steps=60")),
    Pair("sutton_barto/fig6_4", "exact", ("experiment=sutton_barto/fig6_4",),
         smoke=("env.num_runs=5", "algo.episodes=20")),
    Pair("sutton_barto/fig6_5", "exact", ("experiment=sutton_barto/fig6_5",),
         smoke=("env.num_runs=50", "algo.episodes=20")),
)
NAMES = tuple(p.name for p in SUITE)


def installed(pair: Pair) -> bool:
    """Whether the extra a pair needs is importable (no import: find_spec only)."""
    return pair.module is None or importlib.util.find_spec(pair.module) is not None


def missing_extra(pair: Pair) -> str:
    return (f"{pair.name} needs the {pair.extra} extra ({pair.module} is not installed):"
            f" pip install 'rlrun[{pair.extra}]'")


def select(only: list[str] | None) -> tuple[list[Pair], list[str]]:
    """(the pairs to run, one-line notes on pairs left out).

    `only` names pairs: an unknown name is an error with the closest names (or the list);
    a named pair whose extra is missing is an error naming the extra. Without `only`, the
    whole suite, and a pair whose extra is missing is left out with a note: a user without
    Box2D still gets the rest of the table."""
    by_name = {p.name: p for p in SUITE}
    if only:
        for name in only:
            if name not in by_name:
                hint = did_you_mean(name, list(NAMES))
                hint = hint if hint.startswith(";") else ""
                raise ConfigError(f"--only {name}: no such pair{hint} (pairs:"
                                  f" {', '.join(NAMES)})")
        pairs = [by_name[n] for n in dict.fromkeys(only)]
        for p in pairs:
            if not installed(p):
                raise ConfigError(missing_extra(p))
        return pairs, []
    pairs = [p for p in SUITE if installed(p)]
    notes = [f"skipped {missing_extra(p)}" for p in SUITE if not installed(p)]
    return pairs, notes
