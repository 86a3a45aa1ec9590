"""Dynamic programming on a known MDP (Sutton & Barto chapters 3-4): policy evaluation, value
iteration and policy iteration, one loop each, read top to bottom.

    rlrun algo=policy_evaluation                          # Figure 3.2: v of the random policy
    rlrun algo=value_iteration                            # Figure 3.5: v* and pi*
    rlrun algo=policy_iteration env=jacks_car_rental      # Figure 4.2's policies
    rlrun experiment=sutton_barto/fig4_1                  # each figure: docs/tabular.md

The backups are rlrun.rl.dp's, dense NumPy over the task's (S, A, S) model; what a run
leaves besides its scalars (values.json, the figures) is rlrun.rl.tabular_report's. Every
sweep (policy iteration: every evaluation and improvement round) is one `ctx.tick` and logs
`dp/delta`, the largest change of a value; a run stopped midway resumes at that sweep.

Ties: a state's greedy actions are those within `algo.atol` of its best q (values.json
lists them all, the figures draw them all); a policy takes the lowest-numbered, and policy
iteration keeps a state's action while it is still greedy, so it cannot cycle between
equally good policies and every run breaks ties the same way (rlrun.rl.dp).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rlrun.rl import dp
from rlrun.rl import tabular_report as report
from rlrun.rl.tabular_task import (
    initial_policy,
    load_task,
    make_mdp,
    one_blas_thread,
    policy_name,
    task_policy,
    title,
)

MAX_EVAL_SWEEPS = 1_000_000  # policy iteration's sweep evaluation of one policy, at most


def policy_evaluation(ctx) -> None:
    """v_pi of one policy: exactly (`method=linear`) or by sweeps to `algo.theta`."""
    cfg = ctx.algo
    with one_blas_thread():
        task = load_task(ctx.env)
        mdp = make_mdp(task, cfg.gamma)
        pi = task_policy(cfg.policy, cfg.policy_file, task)
        kept = sorted(set(cfg.snapshots))
        st = {"v": np.zeros(mdp.S), "snapshots": np.zeros((len(kept), mdp.S)),
              "converged": False}
        ctx.track(counters=st)
        ctx.resume()
        ctx.start_progress(1 if cfg.method == "linear" else cfg.max_iterations, unit="sweep")

        if cfg.method == "linear" and not st["converged"]:
            st["v"] = mdp.evaluate(pi)  # (I - gamma P_pi) v = r_pi
            P, r = mdp.policy_model(pi)
            residual = float(np.abs(r + mdp.gamma * (P @ st["v"]) - st["v"]).max())
            ctx.logger.scalar("dp/delta", residual, 1)  # the solution's Bellman residual
            st["converged"] = True
            ctx.tick(1, residual)
        elif cfg.method == "sweep":  # v(s) <- sum_a pi(a|s) q(s, a), sweep after sweep
            policy_model = mdp.policy_model(pi)
            _sweep(ctx, st, kept, cfg, lambda v: mdp.evaluation_sweep(v, policy_model,
                                                                      in_place=cfg.in_place))

        def final() -> None:
            v = st["v"]
            q = mdp.q(v)
            greedy = dp.greedy_mask(q, cfg.atol)
            ctx.logger.scalar("eval/start_value", report.start_value(task, v), ctx.step)
            last = "k = ∞ (linear solve)" if cfg.method == "linear" else \
                f"k = {ctx.step}" + (" (Δ < θ)" if st["converged"] else "")
            report.write_values(ctx, task, v, q=q, greedy=greedy, iterations=ctx.step,
                                gamma=mdp.gamma, converged=st["converged"],
                                snapshots=list(zip(kept, st["snapshots"], strict=True)),
                                actions=dp.first_greedy(q, cfg.atol).tolist())
            if cfg.draws:
                rows = [(f"k = {k}", s) for k, s in zip(kept, st["snapshots"], strict=True)
                        if k < ctx.step] + [(last, v)]
                name = policy_name(cfg.policy, cfg.policy_file, task)
                report.draw(ctx, task, mdp, rows=rows, greedy=greedy,
                            actions=dp.first_greedy(q, cfg.atol), mu_policy=pi,
                            title=f"Policy evaluation ({name} policy), γ = {mdp.gamma:g},"
                                  f" {title(task)}")

        report.warn_unconverged(ctx, st["converged"], cfg.max_iterations)
        ctx.finish(final=final)


def value_iteration(ctx) -> None:
    """v* by sweeps of v(s) <- max_a q(s, a) to `algo.theta`, then its greedy policy."""
    cfg = ctx.algo
    with one_blas_thread():
        task = load_task(ctx.env)
        mdp = make_mdp(task, cfg.gamma)
        kept = sorted(set(cfg.snapshots))
        st = {"v": np.zeros(mdp.S), "snapshots": np.zeros((len(kept), mdp.S)),
              "converged": False}
        ctx.track(counters=st)
        ctx.resume()
        ctx.start_progress(cfg.max_iterations, unit="sweep")

        # v(s) <- max_a q(s, a), sweep after sweep
        _sweep(ctx, st, kept, cfg, lambda v: mdp.optimality_sweep(v, in_place=cfg.in_place))

        def final() -> None:
            v = st["v"]
            q = mdp.q(v)
            greedy, actions = dp.greedy_mask(q, cfg.atol), dp.first_greedy(q, cfg.atol)
            ctx.logger.scalar("eval/start_value", report.start_value(task, v), ctx.step)
            report.write_values(ctx, task, v, q=q, greedy=greedy, iterations=ctx.step,
                                gamma=mdp.gamma, converged=st["converged"],
                                snapshots=list(zip(kept, st["snapshots"], strict=True)),
                                actions=actions.tolist())
            if cfg.draws:
                rows = [(f"sweep {k}", s) for k, s in zip(kept, st["snapshots"], strict=True)
                        if k < ctx.step] + [(f"final (sweep {ctx.step})", v)]
                split = greedy / greedy.sum(axis=1, keepdims=True)  # ties shared, as drawn
                report.draw(ctx, task, mdp, rows=rows, greedy=greedy, actions=actions,
                            mu_policy=split, title=f"Value iteration, γ = {mdp.gamma:g},"
                                                   f" {title(task)}")

        report.warn_unconverged(ctx, st["converged"], cfg.max_iterations)
        ctx.finish(final=final)


def policy_iteration(ctx) -> None:
    """Evaluate pi_k (exactly, or by sweeps from pi_{k-1}'s values), improve it greedily,
    until no state's action changes: pi_0, pi_1, ... and v of the last, which is optimal."""
    cfg = ctx.algo
    with one_blas_thread():
        task = load_task(ctx.env)
        mdp = make_mdp(task, cfg.gamma)
        pi_0 = initial_policy(cfg.initial_action, task, mdp)
        uniform_start = cfg.initial_action is None
        st = {"v": np.zeros(mdp.S), "stable": False,
              "actions": np.full(mdp.S, -1 if uniform_start else cfg.initial_action),
              "policies": np.zeros((0, mdp.S), dtype=np.int64)}  # pi_0, pi_1, ... (-1: uniform)
        ctx.track(counters=st)
        ctx.resume()
        ctx.start_progress(cfg.max_iterations, unit="round")

        while not st["stable"] and ctx.step < cfg.max_iterations:
            k = ctx.step + 1  # round k evaluates pi_{k-1}, then improves it
            actions = st["actions"]
            pi = pi_0 if actions[0] < 0 else dp.deterministic(actions, mdp.A)
            before = st["v"].copy()
            if cfg.evaluation == "linear":
                try:
                    st["v"], sweeps = mdp.evaluate(pi), 0
                except dp.ImproperPolicyError as e:  # a zero-cost loop with gamma = 1
                    raise dp.ImproperPolicyError(f"policy iteration, pi_{k - 1}: {e}") from None
            else:  # from the previous policy's values, as the book's algorithm
                policy_model, sweeps = mdp.policy_model(pi), 0
                while mdp.evaluation_sweep(st["v"], policy_model, cfg.in_place) >= cfg.theta:
                    sweeps += 1
                    if sweeps >= MAX_EVAL_SWEEPS:
                        raise dp.ImproperPolicyError(
                            f"policy iteration, pi_{k - 1}: its evaluation did not settle in"
                            f" {MAX_EVAL_SWEEPS} sweeps (a policy that never ends with"
                            " gamma=1?); use algo.evaluation=linear or algo.gamma < 1")
                sweeps += 1
            q = mdp.q(st["v"])
            if actions[0] < 0:  # from the uniform random pi_0: every state takes a greedy action
                new, changes = dp.first_greedy(q, cfg.atol), int((~mdp.terminal).sum())
            else:
                new, changes = dp.improve(q, actions, cfg.atol)
            delta = float(np.abs(st["v"] - before).max())
            ctx.logger.scalars({"dp/delta": delta, "dp/policy_changes": changes,
                                "eval/start_value": report.start_value(task, st["v"])}, k)
            if cfg.evaluation == "sweep":
                ctx.logger.scalar("dp/eval_sweeps", sweeps, k)
            st["policies"] = np.vstack([st["policies"], actions[None, :]])
            st["actions"], st["stable"] = new, changes == 0
            if ctx.tick(k, delta):
                break

        def final() -> None:
            v, actions = st["v"], st["actions"]
            q = mdp.q(v)
            greedy = dp.greedy_mask(q, cfg.atol)
            policies = [None if p[0] < 0 else p.tolist() for p in st["policies"]]
            report.write_values(ctx, task, v, q=q, greedy=greedy, iterations=ctx.step,
                                gamma=mdp.gamma, converged=st["stable"],
                                actions=actions.tolist(), policies=policies)
            if cfg.draws:
                shown = [(f"π{i}", p) for i, p in enumerate(st["policies"]) if p[0] >= 0]
                report.draw(ctx, task, mdp, rows=[(f"v of π{ctx.step - 1}", v)],
                            greedy=greedy, actions=actions, policies=shown,
                            mu_policy=dp.deterministic(actions, mdp.A),
                            title=f"Policy iteration, γ = {mdp.gamma:g}, {title(task)}")

        report.warn_unconverged(ctx, st["stable"], cfg.max_iterations)
        ctx.finish(final=final)


def _sweep(ctx, st: dict, kept: list[int], cfg, sweep: Callable[[np.ndarray], float]) -> None:
    """Sweeps of `st["v"]` (in place; each returns its largest change, `dp/delta`) until
    one changes no value by `algo.theta` or more, or `algo.max_iterations`; one tick each,
    the values of the sweeps in `kept` (`algo.snapshots`, 0: before the first) kept."""
    _keep(st, kept, ctx.step)
    while not st["converged"] and ctx.step < cfg.max_iterations:
        delta = sweep(st["v"])
        k = ctx.step + 1
        ctx.logger.scalar("dp/delta", delta, k)
        _keep(st, kept, k)
        st["converged"] = delta < cfg.theta
        if ctx.tick(k, delta):
            return


def _keep(st: dict, kept: list[int], k: int) -> None:
    """Keep the values of iteration k when it is one of `algo.snapshots`."""
    if k in kept:
        st["snapshots"][kept.index(k)] = st["v"]
