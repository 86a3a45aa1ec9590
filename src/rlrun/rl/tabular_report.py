"""What a chapter 3-5 run leaves besides its scalars: `values.json` and its figures.

`values.json` (in the run dir):

    values        v in state order
    q             q(s, a) (null for an invalid action), where computed
    policy        for each state, the list of its greedy actions (within atol of the best;
                  [] for a terminal state)
    state_labels, action_labels, iterations, gamma, converged
    snapshots     {"k": values} for the kept iterations (sweeps, or episode counts for MC)
    policies      policy iteration: the action of each state under pi_0, pi_1, ... (null for
                  a uniform random pi_0)
    actions       the policy a run ends with: one action per state (the lowest-numbered
                  greedy one)

The figures are chosen by the task: Jack's car rental, the gambler's problem, blackjack,
grid tasks (values with numbers and greedy arrows, and mu_pi as a heatmap), else values per
state (rlrun.rl.tabular_figures draws them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.checkpoint import atomic_write_json
from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.blackjack import BlackjackBookEnv
from rlrun.envs.tabular.planning import GamblersProblemEnv, JacksCarRentalEnv
from rlrun.rl import dp
from rlrun.rl.tabular_task import Grid, Task, grid_layout

log = logging.getLogger("rlrun")


def greedy_lists(greedy: np.ndarray, terminal: np.ndarray) -> list[list[int]]:
    """values.json's `policy`: each state's greedy actions, [] for terminal states."""
    return [[] if terminal[s] else np.flatnonzero(row).tolist() for s, row in enumerate(greedy)]


def write_values(ctx: Any, task: Task, values: np.ndarray, *, q: np.ndarray | None = None,
                 greedy: np.ndarray | None = None, iterations: int, gamma: float,
                 converged: bool | None = None,
                 snapshots: Sequence[tuple[int, np.ndarray]] = (),
                 **extra: Any) -> Path:
    """Write `<run>/values.json` (see the module docstring); returns its path."""
    m = task.model
    out: dict[str, Any] = {"values": np.asarray(values, dtype=float).tolist()}
    if q is not None:
        out["q"] = [[None if not np.isfinite(x) else float(x) for x in row] for row in q]
    if greedy is not None:
        out["policy"] = greedy_lists(greedy, m.terminal)
    out.update({"state_labels": task.state_labels, "action_labels": task.action_labels,
                "iterations": int(iterations), "gamma": float(gamma)})
    if converged is not None:
        out["converged"] = bool(converged)
    if snapshots:
        out["snapshots"] = {str(k): np.asarray(v, dtype=float).tolist() for k, v in snapshots}
    out.update(extra)
    path = Path(ctx.run_dir) / "values.json"
    atomic_write_json(path, out)
    return path


def warn_unconverged(ctx: Any, converged: bool, limit: int) -> None:
    """Say so when a loop reached algo.max_iterations before converging."""
    if not converged and ctx.step >= limit:
        log.warning("stopped at algo.max_iterations=%d before converging (values.json says"
                    " converged: false); raise it, or algo.theta", limit)


def start_value(task: Task, values: np.ndarray) -> float:
    """v at the task's start distribution (`eval/start_value`)."""
    return float(task.model.initial @ values)


def on_policy_distribution(mdp: dp.MDP, pi: np.ndarray) -> np.ndarray | None:
    """mu_pi for a heatmap: the on-policy distribution of an episodic task (restarts at the
    start distribution when an episode ends, book section 9.2); on a continuing task the
    discounted visitation from the start (restart probability 1 - gamma, PageRank with
    damping gamma), which exists for every policy. None where it does not settle."""
    restart = 1.0 - mdp.gamma if dp.is_continuing(mdp.model) else 0.0
    try:
        mu, _ = dp.on_policy_distribution(mdp, pi, restart=restart, max_sweeps=200_000)
    except ConfigError:
        return None
    return mu


# ---- figures -----------------------------------------------------------------------------------
def draw(ctx: Any, task: Task, mdp: dp.MDP, *, rows: Sequence[tuple[str, np.ndarray]],
         greedy: np.ndarray, actions: np.ndarray, title: str,
         policies: Sequence[tuple[str, np.ndarray]] = (), mu_policy: np.ndarray | None = None,
         tag: str = "dp") -> list[Path]:
    """The run's figures for its task (see the module docstring): `rows` are the value
    functions to show (label, v), the last the final one; `greedy`/`actions` its greedy
    policy; `policies` a sequence of policies (policy iteration); `mu_policy` the policy
    whose mu_pi is drawn on grid tasks."""
    from rlrun.rl import tabular_figures as F

    env, m = task.env, task.model
    paths = []
    v = rows[-1][1]
    if isinstance(env, JacksCarRentalEnv):
        n = env.max_cars + 1
        shown = [(label, a - env.MAX_MOVE) for label, a in policies] or \
            [("greedy policy", actions - env.MAX_MOVE)]
        fig = F.draw_car_rental(shown, v, n, title)
        paths.append(F.publish(ctx, "car_rental", fig, f"{tag}/car_rental"))
    elif isinstance(env, GamblersProblemEnv):
        fig = F.draw_gambler(rows, actions, title)
        paths.append(F.publish(ctx, "gambler", fig, f"{tag}/gambler"))
    elif isinstance(env, BlackjackBookEnv):
        fig = F.draw_blackjack_policy(actions, v, title)
        paths.append(F.publish(ctx, "blackjack", fig, f"{tag}/blackjack"))
    else:
        grid = grid_layout(task)
        if grid is not None:
            masks = [(label, values, dp.greedy_mask(mdp.q(values))) for label, values in rows]
            masks[-1] = (rows[-1][0], v, greedy)
            fig = F.draw_grid_rows(masks, grid, m.terminal, title)
            paths.append(F.publish(ctx, "values", fig, f"{tag}/values"))
        else:
            fig = F.draw_values(rows, task.state_labels, title)
            paths.append(F.publish(ctx, "values", fig, f"{tag}/values"))
    if mu_policy is not None:
        paths += draw_mu(ctx, task, mdp, mu_policy, tag)
    return paths


def draw_mu(ctx: Any, task: Task, mdp: dp.MDP, pi: np.ndarray, tag: str,
            what: str = "the final policy") -> list[Path]:
    """mu_pi as a heatmap, for grid tasks (Jack's car rental included)."""
    from rlrun.rl import tabular_figures as F

    grid = grid_layout(task)
    if grid is None:
        return []
    mu = on_policy_distribution(mdp, pi)
    if mu is None:
        return []
    kind = "discounted visitation" if dp.is_continuing(mdp.model) else "on-policy distribution"
    cars = isinstance(task.env, JacksCarRentalEnv)
    scale = min(0.5, 6.0 / max(grid.rows, grid.cols))
    fig, (ax,) = F.figure(1, 1, size=(scale * grid.cols + 2.4, scale * grid.rows + 1.2))
    F.heatmap(ax, mu, grid, f"μ_π of {what} ({kind})", "share of time",
              ("# cars at second location", "# cars at first location") if cars else None)
    return [F.publish(ctx, "mu", fig, f"{tag}/on_policy_distribution")]


def draw_estimates(ctx: Any, task: Task, mdp: dp.MDP, rows: Sequence[tuple[str, np.ndarray]],
                   exact: np.ndarray, title: str) -> list[Path]:
    """Monte Carlo prediction: the estimates of `rows` (blackjack: Figure 5.1's surfaces;
    grid tasks: value grids; else values per state), beside the exact v_pi."""
    from rlrun.rl import tabular_figures as F

    if isinstance(task.env, BlackjackBookEnv):
        fig = F.draw_blackjack_values(rows, title)
        return [F.publish(ctx, "blackjack_values", fig, "mc/values")]
    shown = [*rows, ("exact v_π", exact)]
    grid = grid_layout(task)
    if grid is not None:
        plain = Grid(grid.rows, grid.cols, None)  # estimates only: no greedy arrows
        fig = F.draw_grid_rows([(label, v, None) for label, v in shown], plain,
                               task.model.terminal, title, decimals=2)
    else:
        fig = F.draw_values(shown, task.state_labels, title)
    return [F.publish(ctx, "values", fig, "mc/values")]


def draw_control(ctx: Any, task: Task, mdp: dp.MDP, values: np.ndarray, actions: np.ndarray,
                 wrong: np.ndarray, title: str) -> list[Path]:
    """Monte Carlo control: the greedy policy and its values (blackjack: Figure 5.2, the
    states where it is not optimal crossed out)."""
    from rlrun.rl import tabular_figures as F

    if isinstance(task.env, BlackjackBookEnv):
        fig = F.draw_blackjack_policy(actions, values, title, wrong)
        return [F.publish(ctx, "blackjack_policy", fig, "mc/policy")]
    greedy = dp.deterministic(actions, mdp.A).astype(bool)
    return draw(ctx, task, mdp, rows=[("estimate", values)], greedy=greedy, actions=actions,
                title=title, tag="mc")


def draw_importance_sampling(ctx: Any, title: str, ylabel: str) -> list[Path]:
    """Figure 5.3 from the run's own logged errors."""
    from rlrun.rl import tabular_figures as F

    history = ctx.logger.history()
    steps, ordinary, _ = history["mc/ordinary_mse"]
    _, weighted, _ = history["mc/weighted_mse"]
    fig = F.draw_importance_sampling(np.asarray(steps), np.asarray(ordinary),
                                     np.asarray(weighted), title, ylabel)
    return [F.publish(ctx, "importance_sampling", fig, "mc/importance_sampling")]


# ---- chapter 6's learners against the exact solution --------------------------------------------
class ExactReference:
    """v* of a task, solved once (rlrun.rl.dp.solve_optimal), and what the chapter 6 control
    loops are measured against at each evaluation:

    * `eval/optimality_gap`: v*(start) minus the exact value of the learner's greedy policy
      (ties split evenly, as its greedy evaluation breaks them at random), both at the start
      distribution; 0 once the greedy policy is optimal. A greedy policy that never ends an
      episode (gamma = 1) has no value: it gets the expected return of its first
      `horizon` steps, the cap the sampled `eval/return` uses;
    * `eval/value_rms`: the RMS over the reachable non-terminal states of max_a Q(s, a) -
      v*(s), against v* for every method: Q-learning's estimates converge to it, Sarsa's and
      Expected Sarsa's to the values of their epsilon-greedy policy, so theirs stays above 0
      by the cost of exploring.
    """

    def __init__(self, mdp: dp.MDP, horizon: int):
        from rlrun.rl.tabular_task import one_blas_thread, reachable_states

        self.mdp, self.horizon = mdp, horizon
        with one_blas_thread():
            self.v_star, _, _ = dp.solve_optimal(mdp)
        self.live = np.flatnonzero(reachable_states(mdp.model))
        self.start = float(mdp.initial @ self.v_star)

    @classmethod
    def of(cls, model: Any, gamma: float, name: str, horizon: int) -> ExactReference | None:
        """The reference, or None where the task has no finite values at `gamma` (a
        continuing task with gamma = 1: the loops still learn, capped by episode length)."""
        try:
            return cls(dp.MDP(model, gamma, name), horizon)
        except ConfigError as e:
            log.info("no eval/optimality_gap or eval/value_rms: %s", e)
            return None

    def policy_value(self, pi: np.ndarray) -> np.ndarray:
        """v_pi exactly, or its first `horizon` steps' expected return where pi never ends."""
        try:
            return self.mdp.evaluate(pi)
        except dp.ImproperPolicyError:
            P, r = self.mdp.policy_model(pi)
            v = np.zeros(self.mdp.S)
            for _ in range(self.horizon):
                v = r + self.mdp.gamma * (P @ v)
            return v

    def measure(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gap, rms) per run, from the runs' Q tables q (runs, S, A)."""
        from rlrun.rl.tabular_task import one_blas_thread

        m = self.mdp
        q = np.where(m.valid, q, -np.inf)
        best = q.max(axis=2)
        ties = q == best[:, :, None]
        gap = np.zeros(len(q))
        with one_blas_thread():
            for i in range(len(q)):
                pi = ties[i] / ties[i].sum(axis=1, keepdims=True)
                gap[i] = self.start - float(m.initial @ self.policy_value(pi))
        err = best[:, self.live] - self.v_star[self.live]
        return gap, np.sqrt((err**2).mean(axis=1))
