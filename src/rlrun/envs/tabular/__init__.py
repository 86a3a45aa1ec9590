"""Tabular tasks of Sutton & Barto chapter 6, and their dense transition models.

The chapter 6 TD methods (TD(0), Sarsa, Q-learning, Expected Sarsa, Double Q-learning) are
run over thousands of independent runs at once. Stepping thousands of Gymnasium envs one by
one in Python would dominate the run time, so the loop instead samples every run's next state
from the env's transition model with a few NumPy operations. This module provides both halves:

* `model_from_env` turns any tabular Gymnasium env (a toy_text-style `P` table: the project's
  own envs below, `CliffWalking-v1`, `FrozenLake-v1`, `Taxi-v4`, ...) into a dense
  `TabularModel` of (S, A, S) arrays;
* the book's own tasks as real Gymnasium envs, so they can also be stepped, rendered, checked
  with `gymnasium.utils.env_checker.check_env` and made by id after `import rlrun.envs.tabular`:

  =============================  ==========================  ===================
  id                             class                       max_episode_steps
  =============================  ==========================  ===================
  ``rlrun/RandomWalk-v0``        `RandomWalkEnv`             none (ends w.p. 1)
  ``rlrun/MaximizationBias-v0``  `MaximizationBiasEnv`       100
  ``rlrun/WindyGridworld-v0``    `WindyGridworldEnv`         10_000
  ``rlrun/CliffWalkingBook-v0``  `CliffWalkingBookEnv`       10_000
  ``rlrun/Gridworld-v0``         `GridworldEnv`              1_000 (continuing)
  ``rlrun/SmallGridworld-v0``    `SmallGridworldEnv`         10_000
  ``rlrun/JacksCarRental-v0``    `JacksCarRentalEnv`         1_000 (continuing)
  ``rlrun/GamblersProblem-v0``   `GamblersProblemEnv`        10_000
  ``rlrun/BlackjackBook-v0``     `BlackjackBookEnv`          none (ends w.p. 1)
  =============================  ==========================  ===================

  The chapter 3-5 tasks (the last five) keep their dynamics as dense arrays
  (`rlrun.envs.tabular.dense`) and hand them to `model_from_env` directly.

  The caps only guard a policy that never reaches the goal: a uniformly random policy
  finishes the gridworlds in a few hundred to a few thousand steps, and the book's learning
  curves never come near 10_000 steps in an episode. The maximization-bias task ends after
  at most 2 valid actions; its cap stops a policy that keeps choosing the no-op (invalid)
  actions in state A.

The project's envs follow the toy_text conventions (`P[s][a] = [(prob, next_state, reward,
terminated), ...]`, `initial_state_distrib`, `s`, `np_random`), and expose what the loop
needs beyond them as attributes that `model_from_env` reads when present:
`reward_std` (S, A), `valid_actions` (S, A) bool, `terminal_states` (S,) bool and
`true_values` (S,) or None.
"""

from __future__ import annotations

from rlrun.envs.tabular.blackjack import BlackjackBookEnv, BlackjackSim
from rlrun.envs.tabular.book import (
    CliffWalkingBookEnv,
    MaximizationBiasEnv,
    RandomWalkEnv,
    WindyGridworldEnv,
)
from rlrun.envs.tabular.model import TabularModel, model_from_env
from rlrun.envs.tabular.planning import (
    GamblersProblemEnv,
    GridworldEnv,
    JacksCarRentalEnv,
    SmallGridworldEnv,
)
from rlrun.envs.tabular.registry import register_envs

__all__ = [
    "BlackjackBookEnv",
    "BlackjackSim",
    "CliffWalkingBookEnv",
    "GamblersProblemEnv",
    "GridworldEnv",
    "JacksCarRentalEnv",
    "SmallGridworldEnv",
    "MaximizationBiasEnv",
    "RandomWalkEnv",
    "TabularModel",
    "WindyGridworldEnv",
    "model_from_env",
    "register_envs",
]

register_envs()  # importing the package makes the rlrun/... ids available, as Gymnasium's do
