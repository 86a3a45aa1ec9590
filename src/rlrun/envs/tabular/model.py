"""A tabular MDP as dense (S, A, S) arrays, read from any toy_text-style Gymnasium env.

`model_from_env` turns a tabular env with a `P` table (the project's own book envs,
`CliffWalking-v1`, `FrozenLake-v1`, `Taxi-v4`, ...) into a `TabularModel` that the chapter 6
loops sample thousands of runs from at once (`rlrun.envs.tabular_sim`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from rlrun.core.errors import ConfigError

Transition = tuple[float, int, float, bool]
# The tasks with a transition model that rlrun ships configs for (the error above names them).
TABLE_ENVS = ("env=gridworld_3_5, small_gridworld_4_1, jacks_car_rental, gamblers_problem,"
              " blackjack, random_walk, random_walk_19, windy_gridworld, cliff_walking_book,"
              " maximization_bias, CliffWalking-v1, FrozenLake-v1, Taxi-v4")
TransitionTable = dict[int, dict[int, list[Transition]]]



@dataclass
class TabularModel:
    """Everything the vectorised TD loop needs to simulate an env, as dense arrays.

    Dense (S, A, S) arrays let the loop sample all runs' next states at once (cumulative sums
    of `P[s, a]` rows against uniform draws) and let tests solve Bellman equations exactly.

    `P[s, a]` sums to 1 for every (s, a) with transitions in the env's table; rows of invalid
    actions hold whatever the env does with them (a no-op self-loop in the project's envs).
    Rows of `terminal` states are absorbing self-loops with `done` set and reward 0, whatever
    the env's table says there (the loop never acts in them; toy_text tables sometimes keep
    live moves in the goal cell). `valid` is True for all actions of terminal states, so
    masked arg-maxes over them stay well-defined.
    """

    n_states: int
    n_actions: int
    P: np.ndarray  # (S, A, S) float64 transition probabilities
    R: np.ndarray  # (S, A, S) float64 expected reward of that transition
    reward_std: np.ndarray  # (S, A) std of Gaussian noise added to the reward (0: deterministic)
    done: np.ndarray  # (S, A, S) bool: this transition terminates the episode
    initial: np.ndarray  # (S,) initial-state distribution
    valid: np.ndarray  # (S, A) bool: actions available in s
    terminal: np.ndarray  # (S,) bool: absorbing terminal states (never acted in)
    true_values: np.ndarray | None = None  # v_pi of the uniform random policy, where known

    def __post_init__(self) -> None:
        S, A = self.n_states, self.n_actions
        if S < 1 or A < 1:
            raise ConfigError(f"TabularModel needs n_states>=1 and n_actions>=1, got {S}, {A}")
        shapes = {
            "P": (S, A, S), "R": (S, A, S), "reward_std": (S, A), "done": (S, A, S),
            "initial": (S,), "valid": (S, A), "terminal": (S,),
        }
        if self.true_values is not None:
            shapes["true_values"] = (S,)
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ConfigError(f"TabularModel.{name} has shape {got}, expected {shape}")

    def expected_reward(self) -> np.ndarray:
        """r(s, a) = sum_s' P(s'|s,a) R(s,a,s'): what a one-step lookahead needs."""
        return np.einsum("ijk,ijk->ij", self.P, self.R)


def _env_name(env: gymnasium.Env) -> str:
    spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _discrete_n(space: Any, what: str, name: str) -> int:
    if not isinstance(space, spaces.Discrete) or int(space.start) != 0:
        raise ConfigError(
            f"env={name} has {what} space {space}; a tabular model needs Discrete(n) "
            f"starting at 0 (like CliffWalking-v1)"
        )
    return int(space.n)


def _optional_array(env: Any, attr: str, shape: tuple[int, ...], name: str,
                    dtype: Any) -> np.ndarray | None:
    value = getattr(env, attr, None)
    if value is None:
        return None
    arr = np.array(value, dtype=dtype)
    if arr.shape != shape:
        raise ConfigError(f"env={name} attribute {attr} has shape {arr.shape}, expected {shape}")
    return arr


def _initial_distribution(env: Any, S: int, name: str) -> np.ndarray:
    # toy_text (CliffWalking-v1, FrozenLake-v1, Taxi-v4 in gymnasium 1.x) and the project's envs
    # call it `initial_state_distrib`; the old gym DiscreteEnv called it `isd`.
    for attr in ("initial_state_distrib", "isd"):
        init = _optional_array(env, attr, (S,), name, np.float64)
        if init is not None:
            break
    else:
        raise ConfigError(
            f"env={name} has a P table but no initial-state distribution attribute "
            f"(initial_state_distrib, as toy_text envs keep); add one to the env"
        )
    if (init < 0).any() or abs(init.sum() - 1.0) > 1e-6:
        raise ConfigError(f"env={name} initial_state_distrib is not a probability distribution")
    return init / init.sum()


def _reachable(S: int, src: np.ndarray, dst: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """States an episode can be in before it ends: closure of the start states under the
    non-terminating transitions src -> dst of valid actions."""
    step = np.zeros((S, S), dtype=bool)
    step[src, dst] = True
    live = initial > 0
    frontier = live.copy()
    while frontier.any():
        frontier = step[frontier].any(axis=0) & ~live
        live |= frontier
    return live


def model_from_env(env: gymnasium.Env) -> TabularModel:
    """Dense transition model of a tabular env, read from its toy_text-style `P` table.

    Works through wrappers (it reads `env.unwrapped`). Repeated (next_state) entries in a
    `P[s][a]` list are merged: probabilities add up and rewards are probability-weighted.
    Terminal states come from the env's `terminal_states` attribute when it has one, else they
    are inferred: states an episode can only enter through a terminating transition (FrozenLake
    holes and goal, the CliffWalking goal, Taxi's delivered-passenger states). It builds fresh
    arrays in about 10 ms for Taxi's 500 states, so calling it once per run is cheap;
    the caller may keep the result, nothing here refers back to the env. Envs that keep
    their dynamics as dense arrays (`DenseTabularEnv`: Jack's car rental has 2.1M
    transitions) hand over a copy of them through `tabular_model()` instead.
    """
    name = _env_name(env)
    base = env.unwrapped
    dense = getattr(base, "tabular_model", None)
    if callable(dense):  # envs that keep dense arrays (rlrun.envs.tabular.dense): no table walk
        return dense()
    table = getattr(base, "P", None)
    if table is None:
        raise ConfigError(
            f"env={name} has no tabular model (discrete states and actions with a transition "
            f"table P); these have one: {TABLE_ENVS}"
        )
    S = _discrete_n(env.observation_space, "observation", name)
    A = _discrete_n(env.action_space, "action", name)
    if getattr(base, "fickle_passenger", False):
        raise ConfigError(
            f"env={name} with fickle_passenger=True changes destinations outside its P table; "
            f"use fickle_passenger=False for a tabular model"
        )
    if len(table) != S:
        raise ConfigError(f"env={name} P table has {len(table)} states but the space has {S}")

    rows: list[tuple[int, int, int, float, float, bool]] = []
    has_entries = np.zeros((S, A), dtype=bool)
    for s in range(S):
        if len(table[s]) != A:
            raise ConfigError(f"env={name} P[{s}] has {len(table[s])} actions, expected {A}")
        for a in range(A):
            for prob, s_next, reward, terminated in table[s][a]:
                if prob > 0:
                    rows.append((s, a, int(s_next), float(prob), float(reward), bool(terminated)))
                    has_entries[s, a] = True
    if not rows:
        raise ConfigError(f"env={name} P table has no transitions")
    s_i, a_i, n_i, p, r, d = (np.array(col) for col in zip(*rows, strict=True))
    s_i, a_i, n_i = (x.astype(np.intp) for x in (s_i, a_i, n_i))
    if n_i.min() < 0 or n_i.max() >= S:
        raise ConfigError(f"env={name} P table has next states outside 0..{S - 1}")

    # Merge repeated (s, a, s') entries on the short entry list, then scatter once: the dense
    # arrays are touched only a few times (Taxi's are 1.5M cells each).
    keys, inverse = np.unique((s_i * A + a_i) * S + n_i, return_inverse=True)
    p_key = np.bincount(inverse, weights=p)
    r_key = np.bincount(inverse, weights=p * r) / p_key
    n_done, n_all = np.bincount(inverse, weights=d.astype(float)), np.bincount(inverse)
    mixed = (n_done > 0) & (n_done < n_all)
    if mixed.any():
        s, a, s2 = np.unravel_index(int(keys[np.argmax(mixed)]), (S, A, S))
        raise ConfigError(
            f"env={name} P[{s}][{a}] both terminates and continues into state {s2}; a dense "
            f"model cannot represent that"
        )
    sa_key = keys // S
    sums = np.bincount(sa_key, weights=p_key, minlength=S * A)
    bad = has_entries.ravel() & (np.abs(sums - 1.0) > 1e-6)
    if bad.any():
        s, a = np.unravel_index(int(np.argmax(bad)), (S, A))
        raise ConfigError(f"env={name} P[{s}][{a}] probabilities sum to {sums[s * A + a]}, not 1")
    P, R, done = np.zeros(S * A * S), np.zeros(S * A * S), np.zeros(S * A * S, dtype=bool)
    key_done = n_done > 0
    P[keys], R[keys], done[keys] = p_key / sums[sa_key], r_key, key_done
    P, R, done = P.reshape(S, A, S), R.reshape(S, A, S), done.reshape(S, A, S)

    initial = _initial_distribution(base, S, name)
    valid = _optional_array(base, "valid_actions", (S, A), name, bool)
    valid = has_entries.copy() if valid is None else valid & has_entries
    reward_std = _optional_array(base, "reward_std", (S, A), name, np.float64)
    if reward_std is None:
        reward_std = np.zeros((S, A))
    if (reward_std < 0).any():
        raise ConfigError(f"env={name} reward_std has negative entries")
    true_values = _optional_array(base, "true_values", (S,), name, np.float64)

    terminal = _optional_array(base, "terminal_states", (S,), name, bool)
    if terminal is None:
        s_e, a_e, n_e = np.unravel_index(keys, (S, A, S))
        usable = valid[s_e, a_e]
        goes_on = usable & ~key_done
        live = _reachable(S, s_e[goes_on], n_e[goes_on], initial)
        ends = usable & key_done & live[s_e]
        terminal = ~live & (np.bincount(n_e[ends], minlength=S) > 0)
    if (initial[terminal] > 0).any():
        raise ConfigError(f"env={name} starts episodes in a terminal state")
    idx = np.flatnonzero(terminal)
    self_loop = (idx[:, None], np.arange(A)[None, :], idx[:, None])
    P[idx], R[idx], done[idx] = 0.0, 0.0, False
    P[self_loop], done[self_loop] = 1.0, True
    reward_std[idx] = 0.0
    valid[idx] = True

    missing = ~valid.any(axis=1) & ~terminal
    if missing.any():
        raise ConfigError(f"env={name} state {int(np.argmax(missing))} has no valid action")
    return TabularModel(
        n_states=S, n_actions=A, P=P, R=R, reward_std=reward_std, done=done,
        initial=initial, valid=valid, terminal=terminal, true_values=true_values,
    )


