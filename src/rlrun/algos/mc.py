"""Monte Carlo methods (Sutton & Barto chapter 5): first-visit prediction, control with
exploring starts, and off-policy prediction by ordinary and weighted importance sampling,
one loop each, read top to bottom.

    rlrun algo=mc_prediction                         # Figure 5.1: blackjack, stick on 20
    rlrun algo=mc_control_es                         # Figure 5.2: Monte Carlo ES
    rlrun algo=mc_off_policy                         # Figure 5.3: ordinary vs weighted IS
    rlrun experiment=sutton_barto/fig5_1             # each figure: docs/tabular.md

Episodes are played a batch at a time, every episode of a batch and every run at once
(blackjack deals cards, rlrun.envs.tabular.blackjack.BlackjackSim; other tasks sample their
model), and the returns go into per-state sums and counts (rlrun.rl.mc). The task's exact
model gives what the estimates are measured against: v_pi (prediction), v* and its greedy
actions (control).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlrun.rl import dp, mc
from rlrun.rl import tabular_report as report
from rlrun.rl.tabular_task import (
    episode_source,
    load_task,
    make_mdp,
    one_blas_thread,
    policy_name,
    reachable_states,
    task_policy,
)


def mc_prediction(ctx) -> None:
    """v_pi of a fixed policy: the average return after each state's first visit."""
    cfg, runs = ctx.algo, ctx.env.num_runs
    task = load_task(ctx.env)
    mdp = make_mdp(task, cfg.gamma)
    pi = task_policy(cfg.policy, cfg.policy_file, task)
    with one_blas_thread():
        v_true = mdp.evaluate(pi)  # what mc/rms_error measures against
    scored = _reached(mdp, pi)
    source = episode_source(task, ctx.rng("episodes"))
    acc = mc.Averages(runs, mdp.S)
    kept = sorted(set(cfg.snapshots))
    st = {"snapshots": np.zeros((len(kept), mdp.S))}
    ctx.track(sums=acc.sums, counts=acc.counts, rng=source.rng, counters=st)
    ctx.resume()
    ctx.start_progress(cfg.episodes, unit="episode")

    while ctx.step < cfg.episodes:
        end = _batch_end(ctx.step, max(1, cfg.batch // runs), cfg.episodes, kept)
        n = end - ctx.step
        episodes = source.play(pi, n=n * runs)  # run r plays episodes r*n .. (r+1)*n - 1
        mc.first_visit_prediction(acc, episodes, mdp.gamma, runs=np.repeat(np.arange(runs), n),
                                  first_visit=cfg.first_visit)
        v = acc.means()
        error = _rms(v[:, scored] - v_true[scored])
        ctx.logger.scalar("mc/rms_error", error, end)
        if end in kept:
            st["snapshots"][kept.index(end)] = v[0]
        if ctx.tick(end, error):
            break

    def final() -> None:
        v = acc.means()[0]
        rows = [(f"after {k:,} episodes", s) for k, s in zip(kept, st["snapshots"], strict=True)
                if k < ctx.step] + [(f"after {ctx.step:,} episodes", v)]
        report.write_values(ctx, task, v, iterations=ctx.step, gamma=mdp.gamma,
                            snapshots=list(zip(kept, st["snapshots"], strict=True)),
                            true_values=v_true.tolist(), visits=acc.counts[0].tolist())
        if cfg.draws:
            report.draw_estimates(ctx, task, mdp, rows, v_true,
                                  f"First-visit MC prediction"
                                  f" ({policy_name(cfg.policy, cfg.policy_file, task)}"
                                  f" policy), {task.name}")

    ctx.finish(final=final)


def mc_control_es(ctx) -> None:
    """Monte Carlo ES: every episode starts in a random (state, action) pair, then follows
    the greedy policy on the averages of the returns so far (updated after each batch)."""
    cfg, runs = ctx.algo, ctx.env.num_runs
    task = load_task(ctx.env)
    mdp = make_mdp(task, cfg.gamma)
    m, S, A = task.model, mdp.S, mdp.A
    with one_blas_thread():  # the exact optimum, what eval/policy_agreement is measured against
        v_star, _, _ = dp.solve_optimal(mdp)
    optimal = dp.greedy_mask(mdp.q(v_star))
    live = np.flatnonzero(~m.terminal)
    pairs = np.argwhere(m.valid & ~m.terminal[:, None])  # exploring starts: every valid pair
    source = episode_source(task, ctx.rng("episodes"))
    starts = ctx.rng("starts")
    acc = mc.Averages(runs, S * A)
    first = task_policy(cfg.policy, cfg.policy_file, task)
    st = {"policies": np.repeat(first[None], runs, axis=0)}  # each run's current policy
    ctx.track(sums=acc.sums, counts=acc.counts, rngs=[source.rng, starts], counters=st)
    ctx.resume()
    ctx.start_progress(cfg.episodes, unit="episode")

    while ctx.step < cfg.episodes:
        n = min(cfg.batch, cfg.episodes - ctx.step)
        for r in range(runs):
            s0, a0 = pairs[starts.integers(0, len(pairs), size=n)].T
            episodes = source.play(st["policies"][r], start_states=s0, start_actions=a0)
            mc.first_visit_control(acc, episodes, A, mdp.gamma, runs=np.full(n, r))
        q = np.where(m.valid, acc.means().reshape(runs, S, A), -np.inf)
        st["policies"] = np.stack([mc.greedy_probs(q[r], m.valid) for r in range(runs)])
        end = ctx.step + n
        actions = q.argmax(axis=2)  # (runs, S): the lowest-numbered greedy action
        agreement = float(optimal[live, actions[:, live]].mean())
        value_rms = _rms(q.max(axis=2)[:, live] - v_star[live])
        ctx.logger.scalars({"eval/policy_agreement": agreement, "mc/value_rms": value_rms}, end)
        if ctx.tick(end, agreement):
            break

    def final() -> None:
        q = np.where(m.valid, acc.means()[0].reshape(S, A), -np.inf)
        v, actions = q.max(axis=1), q.argmax(axis=1)
        v[m.terminal] = 0.0
        with one_blas_thread():
            try:  # the exact value of the greedy policy the run ends with
                exact = mdp.evaluate(dp.deterministic(actions, A))
                ctx.logger.scalar("eval/start_value", report.start_value(task, exact), ctx.step)
            except dp.ImproperPolicyError:  # it never ends an episode somewhere: no value
                pass
        wrong = ~optimal[np.arange(S), actions] & ~m.terminal
        report.write_values(ctx, task, v, q=q, greedy=q == q.max(axis=1, keepdims=True),
                            iterations=ctx.step, gamma=mdp.gamma, actions=actions.tolist(),
                            optimal_values=v_star.tolist(),
                            not_optimal=np.flatnonzero(wrong).tolist())
        if cfg.draws:
            report.draw_control(ctx, task, mdp, v, actions, wrong,
                                f"Monte Carlo ES, {ctx.step:,} episodes, {task.name}:"
                                f" {int((~wrong[live]).sum())} of {live.size} states optimal")

    ctx.finish(final=final)


def mc_off_policy(ctx) -> None:
    """v of a target policy from episodes of an epsilon-soft behaviour policy, by ordinary
    (sum rho G / visits) and weighted (sum rho G / sum rho) importance sampling at once."""
    cfg, runs = ctx.algo, ctx.env.num_runs
    task = load_task(ctx.env)
    mdp = make_mdp(task, cfg.gamma)
    target = task_policy(cfg.policy, cfg.policy_file, task)
    eps = cfg.behaviour_epsilon
    behaviour = (1.0 - eps) * target + eps * dp.uniform_policy(task.model.valid)
    with one_blas_thread():
        v_true = mdp.evaluate(target)
    start = cfg.start_state
    scored = np.array([start]) if start is not None else np.flatnonzero(_reached(mdp, behaviour))
    points = np.unique(np.round(np.geomspace(1, cfg.episodes, cfg.log_points)).astype(int))
    source = episode_source(task, ctx.rng("episodes"))
    ordinary, weights = mc.Averages(runs, mdp.S), mc.Averages(runs, mdp.S)
    ctx.track(sums=ordinary.sums, counts=ordinary.counts, rho_sums=weights.sums,
              rho_counts=weights.counts, rng=source.rng)
    ctx.resume()
    ctx.start_progress(cfg.episodes, unit="episode")

    while ctx.step < cfg.episodes:
        end = _batch_end(ctx.step, max(1, cfg.batch // runs), cfg.episodes, points)
        n = end - ctx.step
        episodes = source.play(behaviour, n=n * runs) if start is None else \
            source.play(behaviour, start_states=np.full(n * runs, start))
        mc.off_policy_prediction(ordinary, weights, episodes, target, behaviour, mdp.gamma,
                                 runs=np.repeat(np.arange(runs), n))
        mse = {}
        if end in points:  # the errors at the book's log-spaced episode counts
            for name, v in (("ordinary", ordinary.means()),
                            ("weighted", mc.weighted_estimates(ordinary, weights))):
                mse[name] = float(((v[:, scored] - v_true[scored]) ** 2).mean())
                ctx.logger.scalar(f"mc/{name}_mse", mse[name], end)
        if ctx.tick(end, mse.get("weighted")):
            break

    def final() -> None:
        weighted = mc.weighted_estimates(ordinary, weights)[0]
        report.write_values(ctx, task, weighted, iterations=ctx.step, gamma=mdp.gamma,
                            ordinary=ordinary.means()[0].tolist(), true_values=v_true.tolist())
        if cfg.draws:
            where = (f"state {start} ({task.state_labels[start]}), true value"
                     f" {v_true[start]:.5f}" if start is not None else "all states reached")
            name = policy_name(cfg.policy, cfg.policy_file, task)
            over = "runs" if start is not None else "runs and states"
            behaving = "uniformly random" if eps == 1 else f"{eps:g}-soft on the target"
            report.draw_importance_sampling(
                ctx, f"Off-policy MC (target: {name}; behaviour: {behaving}), {where},"
                     f" {runs} runs", f"Mean square error\n(average over {over})")

    ctx.finish(final=final)


# ---- machinery ----------------------------------------------------------------------------------
def _batch_end(step: int, batch: int, total: int, stops: Sequence[int]) -> int:
    """Where the batch that starts at `step` ends: after `batch` episodes per run, at the
    budget, or at the next of `stops` (snapshots, logging points: exact there)."""
    return int(min([step + batch, total, *(k for k in stops if k > step)]))


def _rms(err: np.ndarray) -> float:
    """Root mean square over states (the last axis), averaged over runs."""
    return float(np.sqrt((err**2).mean(axis=-1)).mean())


def _reached(mdp: dp.MDP, pi: np.ndarray) -> np.ndarray:
    """(S,) bool: the non-terminal states episodes of pi can visit (where errors count)."""
    P, _ = mdp.policy_model(pi)
    return dp.reachable(P, mdp.initial) & ~mdp.terminal & reachable_states(mdp.model)
