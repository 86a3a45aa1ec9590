"""Benchmark: rlrun's vectorised tabular TD loops vs a plain per-step Python loop over a
Gymnasium env, on the workloads of Sutton & Barto Figures 6.4 and 6.5.

    python scripts/bench_td.py                        # both figures, about 1-2 minutes
    python scripts/bench_td.py --figure fig6_4 --ref-runs 50

rlrun steps every run of an experiment together through the env's transition model
(rlrun.envs.tabular_sim), instead of stepping a Gymnasium env run by run. This script says
how much that buys, and shows that both compute the same thing:

* vectorised: `train()` of each algorithm, composed like `rlrun algo=... env=...` (TensorBoard
  logging included), and the loop alone (`rlrun.algos.td.run` with a stub context that only
  records scalars), same seed, so both produce identical numbers;
* reference: the textbook way, one run at a time, one `env.step` at a time on
  `gymnasium.make(id)`, a NumPy Q table, epsilon-greedy with random tie-breaking over the
  actions of `info["action_mask"]`, the same update rules (Sarsa, Q-learning, Expected Sarsa,
  double Q-learning). Its time is linear in the number of runs, so it is measured on
  --ref-runs runs and scaled to the figure's number of runs.

The sanity columns are the figure's numbers from both: the mean return over the last 100
episodes and the share of runs whose greedy policy reaches the goal (Figure 6.4), or the
share of left actions from A over all episodes and over the last 50 (Figure 6.5). They agree
up to sampling noise (the reference has fewer runs, so more of it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Workload:
    """One figure: its env, hyper-parameters and algorithms (rlrun algo config names)."""

    figure: str
    env: str  # rlrun env config name
    env_id: str
    runs: int
    episodes: int
    epsilon: float
    step_size: float
    algos: tuple[str, ...]
    ref_runs: int


# algo config name -> (method, double), as in configs/algo/*.yaml
ALGOS = {"sarsa": ("sarsa", False), "q_learning": ("q_learning", False),
         "expected_sarsa": ("expected_sarsa", False), "double_q_learning": ("q_learning", True)}
EVAL_MAX_STEPS = 1000  # as rlrun's algo.eval_max_steps: a looping greedy policy is cut here


# ---- the reference: one run, one step at a time --------------------------------------------
@dataclass
class RefResult:
    returns: np.ndarray  # per episode
    first_left: np.ndarray  # per episode: the first action was LEFT (maximization bias)
    q: np.ndarray  # the final table(s), (tables, S, A)
    greedy_reached: float = float("nan")  # the final greedy policy reaches a terminal state


def _greedy(values: np.ndarray, acts: np.ndarray, rng: np.random.Generator) -> int:
    """Argmax over the available actions `acts`, ties at random (as the book does)."""
    best = acts[values == values.max()]
    return int(best[0]) if len(best) == 1 else int(best[rng.integers(len(best))])


def reference_run(env: Any, method: str, double: bool, epsilon: float, alpha: float,
                  episodes: int, rng: np.random.Generator, seed: int) -> RefResult:
    """Train one agent on a Gymnasium env, plain Python; gamma = 1 as in the book."""
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    q = np.zeros((2 if double else 1, n_states, n_actions))
    left = getattr(env.unwrapped, "LEFT", -1)

    def act(s: int, acts: np.ndarray) -> int:
        if rng.random() < epsilon:
            return int(acts[rng.integers(len(acts))])
        return _greedy((q[0, s] + q[1, s] if double else q[0, s])[acts], acts, rng)

    returns, first_left = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    s, info = env.reset(seed=seed)
    for ep in range(episodes):
        if ep:
            s, info = env.reset()
        acts = np.flatnonzero(info["action_mask"])
        a = act(s, acts)
        first_left[ep] = a == left
        total = 0.0
        while True:
            s2, r, terminated, truncated, info = env.step(a)
            total += r
            acts2 = np.flatnonzero(info["action_mask"])
            a2 = act(s2, acts2)  # Sarsa's next action; unused after a terminal step
            learn = int(rng.random() < 0.5) if double else 0  # which table learns
            q_learn, q_eval = q[learn], q[1 - learn] if double else q[0]
            if terminated:
                boot = 0.0
            elif method == "sarsa":
                boot = q_eval[s2, a2]
            elif method == "q_learning" and not double:
                boot = q_eval[s2, acts2].max()
            elif method == "q_learning":  # double: argmax of one table, value of the other
                boot = q_eval[s2, _greedy(q_learn[s2, acts2], acts2, rng)]
            else:  # expected Sarsa under the epsilon-greedy policy
                values = q_learn[s2, acts2]
                ties = values == values.max()
                pi = epsilon / len(acts2) + (1.0 - epsilon) * ties / ties.sum()
                boot = float(pi @ q_eval[s2, acts2])
            q_learn[s, a] += alpha * (r + boot - q_learn[s, a])
            if terminated or truncated:
                break
            s, a = s2, a2
        returns[ep] = total
    return RefResult(returns, first_left, q)


def greedy_reaches_goal(env: Any, q: np.ndarray, rng: np.random.Generator) -> float:
    """1.0 if the greedy policy of `q` (tables summed) ends an episode within
    EVAL_MAX_STEPS steps, as rlrun's eval/terminated_fraction counts it; else 0.0."""
    values = q.sum(axis=0)
    s, info = env.reset()
    for _ in range(EVAL_MAX_STEPS):
        acts = np.flatnonzero(info["action_mask"])
        s, _, terminated, truncated, info = env.step(_greedy(values[s, acts], acts, rng))
        if terminated:
            return 1.0
        if truncated:
            break
    return 0.0


def reference(w: Workload, algo: str, seed: int) -> tuple[float, list[RefResult]]:
    """Seconds spent training w.ref_runs runs (the greedy check is not timed), results."""
    import gymnasium

    import rlrun.envs.tabular  # noqa: F401  (registers the rlrun/... ids)

    method, double = ALGOS[algo]
    env = gymnasium.make(w.env_id)
    rng = np.random.default_rng(seed)
    results, seconds = [], 0.0
    for run in range(w.ref_runs):
        t0 = time.perf_counter()
        res = reference_run(env, method, double, w.epsilon, w.step_size, w.episodes, rng,
                            seed=seed * 100_003 + run)
        seconds += time.perf_counter() - t0
        res.greedy_reached = greedy_reaches_goal(env, res.q, rng)
        results.append(res)
    return seconds, results


# ---- the vectorised loop -------------------------------------------------------------------
@dataclass
class _Recorder:
    """Stands in for rlrun's Logger: keeps scalars by tag, writes nothing."""

    series: dict[str, list[float]] = field(default_factory=dict)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.series.setdefault(tag, []).append(float(value))


@dataclass
class _LoopContext:
    """The part of rlrun.core.run.RunContext that the TD loop uses: no files, no progress,
    no checkpoints, so timing it measures the loop itself."""

    algo: Any
    env: Any
    seed: int
    logger: _Recorder = field(default_factory=_Recorder)

    def restore(self) -> None:
        return None

    def start_progress(self, total: int, start: int) -> None:
        pass

    def tick(self, step: int, value: float | None, state_fn: Any) -> bool:
        return False

    def save(self, step: int, loop_state: dict[str, Any]) -> None:
        pass


def overrides(w: Workload, algo: str) -> list[str]:
    return [f"algo={algo}", f"env={w.env}", f"env.num_runs={w.runs}",
            f"algo.episodes={w.episodes}", f"algo.epsilon={w.epsilon}",
            f"algo.step_size={w.step_size}", "algo.gamma=1.0", "seed=0",
            "logger.progress=none"]


def compose(args: Sequence[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from rlrun.core.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return hydra_compose("train", list(args))


def full_train(w: Workload, algo: str) -> tuple[float, dict[str, Any]]:
    from rlrun.train import train

    cfg = compose(overrides(w, algo))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        results = train(cfg, run_dir=d)
        return time.perf_counter() - t0, results


def loop_only(w: Workload, algo: str) -> tuple[float, dict[str, list[float]]]:
    """The loop of `train()` on the same composed config, validated as train() does it."""
    from rlrun.core.config import import_object, validate

    cfg = compose(overrides(w, algo))
    ctx = _LoopContext(
        algo=validate(cfg.algo, import_object(str(cfg.algo.schema), "algo.schema"), "algo"),
        env=validate(cfg.env, import_object(str(cfg.env.schema), "env.schema"), "env"),
        seed=int(cfg.seed))
    loop = import_object(str(cfg.algo.loop), "algo.loop")
    t0 = time.perf_counter()
    loop(ctx)
    return time.perf_counter() - t0, ctx.logger.series


# ---- report --------------------------------------------------------------------------------
def sanity(w: Workload, vec: dict[str, list[float]], ref: list[RefResult]) -> list[str]:
    """The figure's numbers from both implementations, as 'vectorised / reference'."""
    if w.figure == "fig6_4":
        vec_ret = float(np.mean(vec["charts/episodic_return"][-100:]))
        ref_ret = float(np.mean([r.returns[-100:].mean() for r in ref]))
        vec_goal = 100 * vec["eval/terminated_fraction"][-1]
        ref_goal = 100 * float(np.mean([r.greedy_reached for r in ref]))
        return [f"{vec_ret:7.2f} / {ref_ret:7.2f}", f"{vec_goal:5.1f} / {ref_goal:5.1f}"]
    vec_left = np.array(vec["td/left_fraction"])
    ref_left = np.mean([r.first_left for r in ref], axis=0)
    return [f"{100 * vec_left.mean():5.1f} / {100 * ref_left.mean():5.1f}",
            f"{100 * vec_left[-50:].mean():5.1f} / {100 * ref_left[-50:].mean():5.1f}"]


def bench(w: Workload, seed: int) -> None:
    if w.figure == "fig6_4":
        cols = ["return, last 100 ep.", "greedy reaches goal %"]
    else:
        cols = ["left %, all episodes", "left %, last 50"]
    print(f"\n{w.figure}: {w.env_id}, {w.runs} runs x {w.episodes} episodes, eps {w.epsilon},"
          f" alpha {w.step_size}; reference on {w.ref_runs} runs, scaled to {w.runs}")
    print(f"{'algorithm':18s} {'train() s':>9s} {'loop s':>7s} {'reference s':>11s}"
          f" {'ref/train':>9s} {'ref/loop':>8s}   {cols[0]:>21s} {cols[1]:>22s}"
          "   (vectorised / reference)")
    for algo in w.algos:
        train_s, results = full_train(w, algo)
        loop_s, series = loop_only(w, algo)
        vec_eval = results["metrics"].get("eval/terminated_fraction", {}).get("last")
        series["eval/terminated_fraction"] = [float("nan") if vec_eval is None else vec_eval]
        ref_s, ref = reference(w, algo, seed)
        ref_s *= w.runs / w.ref_runs
        s1, s2 = sanity(w, series, ref)
        print(f"{algo:18s} {train_s:9.2f} {loop_s:7.2f} {ref_s:11.1f} {ref_s / train_s:8.0f}x"
              f" {ref_s / loop_s:7.0f}x   {s1:>21s} {s2:>22s}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--figure", choices=("both", "fig6_4", "fig6_5"), default="both")
    p.add_argument("--ref-runs", type=int, default=None,
                   help="runs of the reference loop (default: 10 for fig6_4, 50 for fig6_5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the reference loop")
    args = p.parse_args(argv)
    workloads = [
        Workload("fig6_4", "cliff_walking_book", "rlrun/CliffWalkingBook-v0", 50, 500, 0.1,
                 0.5, ("sarsa", "q_learning", "expected_sarsa"), args.ref_runs or 10),
        Workload("fig6_5", "maximization_bias", "rlrun/MaximizationBias-v0", 1000, 300, 0.1,
                 0.1, ("q_learning", "double_q_learning"), args.ref_runs or 50),
    ]
    t0 = time.perf_counter()
    full_train(workloads[0], "q_learning")  # warm-up: imports, Hydra, TensorBoard writer
    for w in workloads:
        if args.figure in ("both", w.figure):
            bench(w, args.seed)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
