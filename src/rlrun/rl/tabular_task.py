"""What the chapter 3-7 loops share about their task: its model and labels, the discount, the
policy a run follows, the episodes it samples and how its states lie on a grid.

    task = load_task(ctx.env)                     # model, unwrapped env, labels, episode cap
    mdp = make_mdp(task, cfg.gamma)               # gamma null: the task's own discount
    pi = task_policy(cfg.policy, cfg.policy_file, task)       # (S, A) probabilities
    source = episode_source(task, ctx.rng("episodes"))       # blackjack deals cards,
    episodes = source.play(pi, n=10_000)          # other tasks sample their model

`check_task` runs the same steps in the preflight (before a run dir exists), so a task
without a transition table, a discount the task cannot take or a policy file that does not
fit is a one-line error there, not a failed run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.blackjack import BlackjackBookEnv, BlackjackSim, Episodes
from rlrun.envs.tabular.model import TabularModel
from rlrun.envs.tabular_sim import VectorTabularSim, load_model
from rlrun.rl import dp

POLICIES = ("book", "uniform", "greedy", "file")


@dataclass
class Task:
    """A tabular task as the loops use it."""

    model: TabularModel
    env: Any  # the unwrapped Gymnasium env (labels, layout, the book's policy)
    name: str  # `env=<config name>`, for messages
    max_steps: int  # episodes are cut here
    state_labels: list[str]
    action_labels: list[str]
    discount: float  # the book's gamma for this task (1 where the env names none)


def load_task(env_cfg: Any) -> Task:
    """Build the env of an env config once and read its model (a ConfigError naming the
    tasks that have one when it has none)."""
    model, env, max_steps = load_model(env_cfg)
    S, A = model.n_states, model.n_actions
    states = list(getattr(env, "state_labels", None) or [str(s) for s in range(S)])
    actions = list(getattr(env, "action_labels", None) or [str(a) for a in range(A)])
    return Task(model, env, f"env={env_cfg.name}", max_steps, states, actions,
                float(getattr(env, "discount", 1.0)))


def title(task: Task) -> str:
    """The task for figure titles: its name, and the settings that change its picture."""
    env = task.env
    if hasattr(env, "poisson_returns"):  # Jack's car rental
        returns = "Poisson returns" if env.poisson_returns else "fixed returns"
        cut = f", requests and returns cut at {env.max_poisson}" if env.max_poisson else ""
        return f"{task.name} ({returns}{cut})"
    if hasattr(env, "p_heads"):
        return f"{task.name} (p_heads {env.p_heads:g})"
    return task.name


def discount(gamma: float | None, task: Task) -> float:
    return task.discount if gamma is None else float(gamma)


def make_mdp(task: Task, gamma: float | None) -> dp.MDP:
    """The DP arrays of the task at `gamma` (null: the task's own discount); gamma = 1 on a
    continuing task is refused as `algo.gamma=1 on env=...: ...`."""
    try:
        return dp.MDP(task.model, discount(gamma, task), task.name)
    except ConfigError as e:
        text = str(e).replace("use gamma", "use algo.gamma")
        raise ConfigError(f"algo.{text}" + (" (null takes the task's own discount)"
                                             if gamma is None else "")) from None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold BLAS to one thread: a 441-state solve ran 60x slower with its threads spinning
    on two loaded cores, and these matrices are too small to gain from more."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---- policies -----------------------------------------------------------------------------------
def task_policy(kind: str, path: str | None, task: Task, where: str = "algo.policy_file"
                ) -> np.ndarray:
    """(S, A) action probabilities of the policy a run follows or evaluates:

    * `book`: the one the book uses on this task (blackjack: stick on 20 or 21), else
      `uniform`;
    * `uniform`: uniformly random over the valid actions (the book's random policy);
    * `greedy`: greedy on the q table in `path` (a run's values.json, or an (S, A) .npy),
      ties split evenly;
    * `file`: the policy in `path`: a run's values.json (each state's greedy actions,
      chosen evenly), or a .npy of (S, A) probabilities or (S,) actions.
    """
    m = task.model
    if kind == "uniform":
        return dp.uniform_policy(m.valid)
    if kind == "book":
        book = getattr(task.env, "book_policy", None)
        return np.asarray(book(), dtype=float) if callable(book) else dp.uniform_policy(m.valid)
    if kind not in POLICIES:
        raise ConfigError(f"algo.policy={kind!r} must be one of {', '.join(POLICIES)}")
    if not path:
        raise ConfigError(f"algo.policy={kind} reads {where}: name a file")
    S, A = m.n_states, m.n_actions
    raw = _read_policy_file(Path(path).expanduser(), kind, where)
    shown = f"{where}={path}"
    if isinstance(raw, list):  # values.json's policy: lists of greedy actions
        if len(raw) != S:
            raise ConfigError(f"{shown} lists a policy for {len(raw)} states, but {task.name}"
                              f" has {S}: expected {S}")
        pi = np.zeros((S, A))
        for s, acts in enumerate(raw):
            acts = [int(a) for a in acts] if isinstance(acts, list) else []
            if any(not 0 <= a < A for a in acts):
                raise ConfigError(f"{shown}: state {s} lists an action outside 0..{A - 1}")
            if acts:
                pi[s, acts] = 1.0 / len(acts)
            else:  # a terminal state (no action): never used
                pi[s] = m.valid[s] / m.valid[s].sum()
    elif kind == "greedy":
        if raw.shape != (S, A):
            raise ConfigError(f"{shown} holds a q table of shape {raw.shape}, but {task.name}"
                              f" has {S} states and {A} actions: expected ({S}, {A})")
        q = np.where(m.valid, np.nan_to_num(raw, nan=-np.inf), -np.inf)
        ties = q == q.max(axis=1, keepdims=True)
        pi = ties / ties.sum(axis=1, keepdims=True)
    elif raw.shape == (S,) and np.isfinite(raw).all() and (raw == np.round(raw)).all():
        if (raw < 0).any() or (raw >= A).any():
            raise ConfigError(f"{shown}: actions must be in 0..{A - 1}")
        pi = dp.deterministic(raw.astype(np.int64), A)
    elif raw.shape == (S, A):
        pi = raw.astype(float)
    else:
        raise ConfigError(f"{shown} holds a {_shape(raw.shape)} array, but {task.name} has {S}"
                          f" states and {A} actions: expected ({S}, {A}) probabilities or"
                          f" ({S},) actions")
    return check_policy(pi, task, shown)


def policy_name(kind: str, path: str | None, task: Task) -> str:
    """The policy in words, for figure titles."""
    if kind == "book" and callable(getattr(task.env, "book_policy", None)):
        return str(getattr(task.env, "book_policy_name", "the book's policy"))
    if kind in ("book", "uniform"):
        return "uniform random"
    name = Path(str(path)).name
    return f"greedy on the q of {name}" if kind == "greedy" else f"the policy of {name}"


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _read_policy_file(path: Path, kind: str, where: str) -> Any:
    """A .npy array (no pickles) or a values.json: its `q` for `greedy`, its `policy` for
    `file`. Nothing read runs code."""
    shown = f"{where}={path}"
    if not path.is_file():
        raise ConfigError(f"{shown}: no such file" if not path.exists()
                          else f"{shown} is not a regular file")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix != ".json":
            raise ConfigError(f"{shown} must be a .json (a run's values.json) or a .npy file")
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{shown} cannot be read: {str(e).splitlines()[0][:160]}") from None
    key = "q" if kind == "greedy" else "policy"
    if isinstance(data, dict):  # a run's values.json
        if data.get(key) is None:
            raise ConfigError(f"{shown} has no {key!r} (algo.policy={kind} reads a run's"
                              f" values.json {key})")
        if kind == "file":  # each state's list of greedy actions
            if not isinstance(data[key], list) or not all(
                    isinstance(r, list) and all(isinstance(a, int) for a in r)
                    for r in data[key]):
                raise ConfigError(f"{shown}: policy must list each state's actions")
            return data[key]
        data = data[key]
    try:
        arr = np.array([[np.nan if x is None else x for x in row] if isinstance(row, list)
                        else row for row in data], dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{shown}: {key} is not a table of numbers") from None
    return arr


def check_policy(pi: np.ndarray, task: Task, shown: str) -> np.ndarray:
    """Probabilities over the valid actions of every non-terminal state."""
    m = task.model
    live = ~m.terminal
    if not np.isfinite(pi).all() or (pi < 0).any() or \
            not np.allclose(pi[live].sum(axis=1), 1.0, atol=1e-9):
        raise ConfigError(f"{shown}: each state's action probabilities must sum to 1")
    bad = live & (pi * ~m.valid > 0).any(axis=1)
    if bad.any():
        s = int(np.argmax(bad))
        raise ConfigError(f"{shown} chooses an invalid action in state {s}"
                          f" ({task.state_labels[s]})")
    return pi


def check_proper(mdp: dp.MDP, pi: np.ndarray, what: str) -> None:
    """With gamma = 1, a policy that never ends an episode from a state it can reach has no
    value: say so before the run (dp.ImproperPolicyError, one line)."""
    if mdp.gamma < 1.0:
        return
    P, _ = mdp.policy_model(pi)
    stuck = dp.never_terminates(P, mdp.terminal) & dp.reachable(P, mdp.initial)
    if stuck.any():
        s = int(np.argmax(stuck))
        raise dp.ImproperPolicyError(
            f"{what} never ends an episode of {mdp.name} from state {s} ({int(stuck.sum())}"
            f" states) with gamma=1: its values are not defined; set algo.gamma < 1")


def initial_policy(action: int | None, task: Task, mdp: dp.MDP) -> np.ndarray:
    """Policy iteration's pi_0: `action` in every state (one-hot), or uniform for None."""
    m = task.model
    if action is None:
        return dp.uniform_policy(m.valid)
    if action >= m.n_actions:
        raise ConfigError(f"algo.initial_action={action} must be in 0..{m.n_actions - 1}"
                          f" ({task.name} has {m.n_actions} actions)")
    bad = ~m.valid[:, action] & ~m.terminal
    if bad.any():
        s = int(np.argmax(bad))
        raise ConfigError(f"algo.initial_action={action} ({task.action_labels[action]}) is"
                          f" not valid in state {s} ({task.state_labels[s]}) of {task.name};"
                          " use null (pi_0 uniform random)")
    pi = dp.deterministic(np.full(m.n_states, action), m.n_actions)
    check_proper(mdp, pi, f"algo.initial_action={action}")
    return pi


def check_start_state(state: int | None, task: Task) -> None:
    if state is None:
        return
    m = task.model
    if state >= m.n_states or m.terminal[state]:
        raise ConfigError(f"algo.start_state={state} must be a non-terminal state of"
                          f" {task.name} (0..{m.n_states - 1}; terminal:"
                          f" {np.flatnonzero(m.terminal).tolist()[:10]})")


def reachable_states(model: TabularModel) -> np.ndarray:
    """(S,) bool: non-terminal states some sequence of valid actions reaches from the start."""
    pi = dp.uniform_policy(model.valid)
    P = np.einsum("sa,sat->st", pi, np.where(model.done, 0.0, model.P))
    return dp.reachable(P, model.initial) & ~model.terminal


# ---- episodes -----------------------------------------------------------------------------------
class ModelEpisodes:
    """Plays many episodes at once from a task's model, as `BlackjackSim` does by dealing
    cards: `play(policy, n=...)` from the start distribution, or from given start states
    (and first actions: exploring starts). Episodes longer than `max_steps` are cut."""

    def __init__(self, model: TabularModel, rng: np.random.Generator, max_steps: int):
        self.model, self.rng, self.max_steps = model, rng, max_steps
        self.sim = VectorTabularSim(model, rng)

    def play(self, policy: np.ndarray, n: int | None = None,
             start_states: np.ndarray | None = None,
             start_actions: np.ndarray | None = None) -> Episodes:
        if (start_states is None) == (n is None):
            raise ConfigError("play needs either n or start_states")
        s = self.sim.reset(n) if start_states is None else np.asarray(start_states, np.int64)
        n = len(s)
        cdf = np.cumsum(policy, axis=1)
        A = self.model.n_actions
        alive = np.arange(n)
        cur = s.copy()
        steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for t in range(self.max_steps):
            if alive.size == 0:
                break
            sa = cur[alive]
            if t == 0 and start_actions is not None:
                a = np.asarray(start_actions, dtype=np.int64)
            else:
                u = self.rng.random(alive.size)
                a = np.minimum((cdf[sa] < u[:, None]).sum(axis=1), A - 1)
            s2, r, term = self.sim.step(sa, a)
            steps.append((alive, sa, a, r))
            cur[alive] = s2
            alive = alive[~term]
        L = max(len(steps), 1)
        states = np.full((n, L), -1, dtype=np.int32)
        actions = np.full((n, L), -1, dtype=np.int32)
        rewards = np.zeros((n, L))
        lengths = np.zeros(n, dtype=np.int64)
        for t, (idx, sa, a, r) in enumerate(steps):
            states[idx, t], actions[idx, t], rewards[idx, t] = sa, a, r
            lengths[idx] = t + 1
        return Episodes(states, actions, rewards, lengths)


def episode_source(task: Task, rng: np.random.Generator) -> BlackjackSim | ModelEpisodes:
    """Blackjack deals cards (the book's process, checked against the exact model in
    tests); every other task samples its model. Both return `Episodes` and keep `rng`."""
    if isinstance(task.env, BlackjackBookEnv):
        return BlackjackSim(rng)
    return ModelEpisodes(task.model, rng, task.max_steps)


# ---- layout -------------------------------------------------------------------------------------
@dataclass
class Grid:
    """How the states of a grid task lie: state = row * cols + col for the first rows*cols
    states (Jack's car rental has one more, 'lost'), and each action's (drow, dcol) where
    the actions are moves."""

    rows: int
    cols: int
    moves: list[tuple[int, int]] | None


_MOVE_NAMES = {"up": (-1, 0), "right": (0, 1), "down": (1, 0), "left": (0, -1)}
_MOVES_BY_CLASS = {  # Gymnasium's toy_text grids
    "FrozenLakeEnv": [(0, -1), (1, 0), (0, 1), (-1, 0)],  # left, down, right, up
    "CliffWalkingEnv": [(-1, 0), (0, 1), (1, 0), (0, -1)],  # up, right, down, left
}


def grid_layout(task: Task) -> Grid | None:
    """The grid of a grid task (the book's gridworlds, cliff and windy walks, Jack's lots,
    FrozenLake, CliffWalking), or None."""
    env = task.env
    shape = getattr(env, "grid_shape", None)
    if shape is None and hasattr(env, "rows") and hasattr(env, "cols"):
        shape = (env.rows, env.cols)
    if shape is None and hasattr(env, "nrow") and hasattr(env, "ncol"):
        shape = (env.nrow, env.ncol)
    if shape is None and type(env).__name__ == "CliffWalkingEnv":
        shape = tuple(env.shape)
    if shape is None:
        return None
    rows, cols = int(shape[0]), int(shape[1])
    S = task.model.n_states
    if rows * cols not in (S, S - 1):
        return None
    moves = getattr(env, "MOVES", None)
    if moves is not None:
        moves = [tuple(m) for m in moves][:task.model.n_actions]
    elif all(label in _MOVE_NAMES for label in task.action_labels):
        moves = [_MOVE_NAMES[label] for label in task.action_labels]
    else:
        moves = _MOVES_BY_CLASS.get(type(env).__name__)
    return Grid(rows, cols, moves)


# ---- the preflight ------------------------------------------------------------------------------
def check_task(algo: Any, env_cfg: Any, data: bool = True) -> Task:
    """What a tabular loop would find wrong at its start, found before the run dir exists:
    no transition table (the error names the tasks with one), `algo.gamma=1` on a
    continuing task, a policy file that does not fit, a policy that never ends an episode
    with gamma = 1. Returns the task."""
    task = load_task(env_cfg)
    mdp = make_mdp(task, getattr(algo, "gamma", None))
    kind = getattr(algo, "policy", None)
    if kind is not None and (data or kind in ("book", "uniform")):
        pi = task_policy(kind, getattr(algo, "policy_file", None), task)
        check_proper(mdp, pi, f"algo.policy={kind}")
    return task
