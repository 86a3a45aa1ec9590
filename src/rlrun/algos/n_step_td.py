"""n-step TD prediction (Sutton & Barto section 7.1), vectorised over runs and settings.

    rlrun algo=n_step_td                                  # n=4, alpha=0.4, 19-state random walk
    rlrun algo=n_step_td algo.n=1 algo.step_size=0.1      # TD(0)
    rlrun experiment=sutton_barto/fig7_2                  # Figure 7.2: 10 n x 11 alpha at once

The policy is fixed, so an episode does not depend on the values being learnt: each episode
is sampled for all runs at once, then replayed with the book's n-step update in time order
(rlrun.rl.nstep), for every setting (n, alpha) on the same episodes. A parameter study
(`algo.study_n`, `algo.study_step_size`) is therefore one run: Figure 7.2's 110 settings x
100 runs learn side by side. `td/rms_error` (RMS over the states, averaged over runs) is
logged after every episode for `algo.n` and `algo.step_size`; a study also writes each
setting's error averaged over the episodes (study.json, `td/study_best_rms`, its figure).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from rlrun.core.checkpoint import atomic_write_json
from rlrun.rl import dp, nstep
from rlrun.rl import tabular_report as report
from rlrun.rl.tabular_task import load_task, make_mdp, one_blas_thread, task_policy


def run(ctx) -> None:
    cfg, runs = ctx.algo, ctx.env.num_runs
    task = load_task(ctx.env)
    mdp = make_mdp(task, cfg.gamma)
    pi = task_policy(cfg.policy, cfg.policy_file, task)
    with one_blas_thread():
        v_true = mdp.evaluate(pi)  # what the errors are measured against
    P, _ = mdp.policy_model(pi)
    scored = np.flatnonzero(dp.reachable(P, mdp.initial) & ~mdp.terminal)  # where errors count
    # the settings learnt side by side: (algo.n, algo.step_size) first, then the study's grid
    grid = list(itertools.product(cfg.study_n, cfg.study_step_size))
    settings = [(cfg.n, cfg.step_size)] + [g for g in grid if g != (cfg.n, cfg.step_size)]
    ns = np.array([n for n, _ in settings])
    alphas = np.array([a for _, a in settings], dtype=float)

    v = np.full((runs, len(settings), mdp.S), float(cfg.initial_value))
    v[:, :, mdp.terminal] = 0.0
    st = {"v": v, "error_sums": np.zeros(len(settings))}  # per setting, summed over episodes
    rng = ctx.rng("episodes")
    ctx.track(rng=rng, counters=st)

    def errors() -> np.ndarray:  # (settings,) RMS over the states, averaged over runs
        err = st["v"][:, :, scored] - v_true[scored]
        return np.sqrt((err**2).mean(axis=2)).mean(axis=0)

    if not ctx.resume():
        ctx.logger.scalar("td/rms_error", float(errors()[0]), 0)  # before learning
    ctx.start_progress(cfg.episodes, unit="episode")
    while ctx.step < cfg.episodes:
        episodes = nstep.sample_episodes(task.model, pi, rng, runs, task.max_steps)
        nstep.n_step_td(st["v"], episodes, ns, alphas, mdp.gamma)
        err = errors()
        st["error_sums"] += err
        k = ctx.step + 1
        ctx.logger.scalar("td/rms_error", float(err[0]), k)
        if ctx.tick(k, float(err[0])):
            break

    def final() -> None:
        report.write_values(ctx, task, st["v"][0, 0], iterations=ctx.step, gamma=mdp.gamma,
                            true_values=v_true.tolist(), n=cfg.n, step_size=cfg.step_size)
        if not grid:
            if cfg.draws:
                report.draw_estimates(ctx, task, mdp, [(f"n = {cfg.n}, α = {cfg.step_size:g},"
                                                        f" run 0", st["v"][0, 0])], v_true,
                                      f"{cfg.n}-step TD after {ctx.step} episodes,"
                                      f" {task.name}")
            return
        mean = st["error_sums"] / max(ctx.step, 1)
        table = np.array([[mean[settings.index(g)] for g in grid if g[0] == n]
                          for n in cfg.study_n])
        best = np.unravel_index(np.argmin(table), table.shape)
        ctx.logger.scalars({"td/study_best_rms": float(table[best]),
                            "td/study_best_n": float(cfg.study_n[best[0]]),
                            "td/study_best_step_size": float(cfg.study_step_size[best[1]])},
                           ctx.step)
        atomic_write_json(Path(ctx.run_dir) / "study.json", {
            "n": list(cfg.study_n), "step_size": list(cfg.study_step_size),
            "episodes": ctx.step, "runs": runs, "rms": table.tolist()})
        if cfg.draws:
            from rlrun.rl import tabular_figures as F

            fig = F.draw_step_size_study(
                np.array(cfg.study_n), np.array(cfg.study_step_size), table,
                f"n-step TD, {task.name}: RMS error averaged over {mdp.S - mdp.terminal.sum()}"
                f" states, the first {ctx.step} episodes and {runs} runs")
            F.publish(ctx, "step_size_study", fig, "td/step_size_study")

    ctx.finish(final=final)

