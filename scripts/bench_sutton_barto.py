"""Benchmark: Sutton & Barto Figures 3.2-7.2 by rlrun, through its own commands and in its
NumPy core (rlrun.rl.dp, rlrun.rl.mc, rlrun.rl.nstep, the dense envs), against the reference
scripts.

    python scripts/bench_sutton_barto.py --reference ~/reinforcement-learning-an-introduction
    python scripts/bench_sutton_barto.py --reference DIR --figures 4.2 5.3 --ref-scale 0.1
    python scripts/bench_sutton_barto.py --no-commands      # the NumPy core alone, quickly

Three rlrun columns:

* command: `rlrun experiment=sutton_barto/figX_Y` as a user types it, in a fresh process,
  wall clock: Python, torch and Hydra start-up, the preflight, the run (model, loop,
  checkpoint, values.json, the figures drawn and saved), best of --repeat;
* run: that run's own `wall_time_s` (results.json): the command without its start-up
  (with --no-drawing, also without drawing its figures, as the reference's plots are
  stubbed out);
* core: the computation alone, as the loops make it, in this process, best of --repeat.

Figure 4.2 is run per return model (`4.2` fixed, as the reference's default; `4.2p`
Poisson): the preset's exact model and exact evaluation, not the reference's truncated one.

The reference is ShangtongZhang/reinforcement-learning-an-introduction, a checkout you pass
(nothing of it is part of rlrun). Its scripts are imported from DIR as they are, with
`np.int` put back (NumPy >= 1.24 removed it), its plotting replaced by no-ops (both sides
are timed on computation only) and its random seed fixed. It needs scipy, and seaborn if
installed (otherwise a stub stands in: nothing is drawn anyway).

* rlrun core: each figure computed as the loops do, model building included, best of
  --repeat runs; BLAS is held to one thread (like the reference's pure Python, and as
  the loops hold it).
* reference: one run of its function for the figure. For the Monte Carlo and TD figures,
  --ref-scale < 1 runs that fraction of the episodes or runs and scales the time up
  (their cost is linear in both). Figure 4.2 with Poisson returns is estimated: the
  reference's pure-Python backup over 11^4 (requests, returns) combinations takes hours
  for the whole policy iteration, so one evaluation sweep and one improvement sweep are
  timed and multiplied by the sweep counts of rlrun's replica of its algorithm (the
  truncated model, in-place evaluation to 1e-4: the same counts, see tests/test_dp.py).

The machine is shared: timings taken while other jobs run are noisy; the ratios are large
enough that the noise does not change them. Each line also prints a sanity number from both
sides (or from rlrun against the book) so that the speed is of the same computation.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rlrun.envs.tabular import (  # noqa: E402
    BlackjackBookEnv,
    GamblersProblemEnv,
    GridworldEnv,
    JacksCarRentalEnv,
    RandomWalkEnv,
    SmallGridworldEnv,
    model_from_env,
)
from rlrun.envs.tabular import blackjack as bj  # noqa: E402
from rlrun.rl import dp, mc, nstep  # noqa: E402

FIGURES = ("3.2", "3.5", "4.1", "4.2", "4.2p", "4.3", "5.1", "5.2", "5.3", "7.2")


# ---- rlrun -----------------------------------------------------------------------------------
def ours_3_2() -> str:
    env = GridworldEnv()
    mdp = dp.MDP(model_from_env(env), 0.9)
    v = mdp.evaluate(dp.uniform_policy(mdp.valid))
    return "top row " + " ".join(f"{x:.1f}" for x in v[:5])


def ours_3_5() -> str:
    mdp = dp.MDP(model_from_env(GridworldEnv()), 0.9)
    v = np.zeros(25)
    while mdp.optimality_sweep(v) > 1e-4:
        pass
    dp.greedy_mask(mdp.q(v))
    return "top row " + " ".join(f"{x:.1f}" for x in v[:5])


def ours_4_1() -> str:
    mdp = dp.MDP(model_from_env(SmallGridworldEnv()), 1.0)
    pm = mdp.policy_model(dp.uniform_policy(mdp.valid))
    counts = []
    for in_place in (True, False):
        v, n = np.zeros(16), 0
        while mdp.evaluation_sweep(v, pm, in_place=in_place) >= 1e-4:
            n += 1
        counts.append(n)
    return f"sweeps in place {counts[0]}, synchronous {counts[1]}; v[1] {v[1]:.1f}"


def _policy_iteration(mdp: dp.MDP, theta: float | None) -> tuple[np.ndarray, np.ndarray,
                                                                   list[int]]:
    actions, v, sweeps = np.full(mdp.S, 5), np.zeros(mdp.S), []
    while True:
        pi = dp.deterministic(actions, mdp.A)
        if theta is None:
            v = mdp.evaluate(pi)
        else:
            pm, n = mdp.policy_model(pi), 0
            while True:
                n += 1
                if mdp.evaluation_sweep(v, pm, in_place=True) < theta:
                    break
            sweeps.append(n)
        actions, changed = dp.improve(mdp.q(v), actions)
        if changed == 0:
            return actions, v, sweeps


def ours_4_2(poisson: bool) -> str:
    mdp = dp.MDP(model_from_env(JacksCarRentalEnv(poisson_returns=poisson)), 0.9)
    actions, v, _ = _policy_iteration(mdp, None)
    return f"exact model: v in [{v.min():.1f}, {v.max():.1f}]"


def ours_4_2_replica(poisson: bool) -> tuple[str, list[int]]:
    """The reference's own algorithm on its truncated model: in place to 1e-4."""
    env = JacksCarRentalEnv(poisson_returns=poisson, max_poisson=10)
    mdp = dp.MDP(model_from_env(env), 0.9)
    actions, v, sweeps = _policy_iteration(mdp, 1e-4)
    return f"replica: v in [{v[:441].min():.1f}, {v[:441].max():.1f}], sweeps {sweeps}", sweeps


def ours_4_3() -> str:
    mdp = dp.MDP(model_from_env(GamblersProblemEnv()), 1.0)
    v, n = np.zeros(101), 0
    while True:
        n += 1
        if mdp.optimality_sweep(v, in_place=True) < 1e-9:
            break
    stakes = dp.first_greedy(mdp.q(v))
    return f"{n} sweeps, stakes at 25/50/51: {stakes[25]}/{stakes[50]}/{stakes[51]}"


def ours_5_1(rng: np.random.Generator) -> str:
    sim = bj.BlackjackSim(rng)
    out = []
    for episodes in (10_000, 500_000):
        acc = mc.Averages(1, bj.N_STATES)
        for start in range(0, episodes, 100_000):
            ep = sim.play(bj.stick_on(20), n=min(100_000, episodes - start))
            mc.first_visit_prediction(acc, ep)
        out.append(acc.means()[0][:200])
    return f"v(21, usable, 10) after 500k: {out[1][bj.state_index(1, 21, 10)]:.3f}"


def ours_5_2(rng: np.random.Generator) -> str:
    sim = bj.BlackjackSim(rng)
    acc = mc.Averages(1, bj.N_STATES * 2)
    decision = np.arange(200)
    policy = bj.stick_on(20)
    for _ in range(100):
        s0, a0 = mc.exploring_starts(rng, 5000, decision, 2)
        mc.first_visit_control(acc, sim.play(policy, start_states=s0, start_actions=a0), 2)
        policy = mc.greedy_probs(acc.means()[0].reshape(-1, 2))
    q = acc.means()[0].reshape(-1, 2)
    mdp = dp.MDP(model_from_env(BlackjackBookEnv()), 1.0)
    v_star, _, _ = dp.solve_optimal(mdp)
    mask = dp.greedy_mask(mdp.q(v_star))
    return f"policy agreement with the exact optimum {mask[decision, q[:200].argmax(1)].mean():.3f}"


def ours_5_3(rng: np.random.Generator) -> str:
    sim = bj.BlackjackSim(rng)
    s = bj.state_index(1, 13, 2)
    behaviour, target = np.full((bj.N_STATES, 2), 0.5), bj.stick_on(20)
    rho, G = [], []
    for _ in range(10):  # 100 runs x 10,000 episodes, 100,000 at a time
        ep = sim.play(behaviour, start_states=np.full(100_000, s))
        rho.append(mc.importance_ratios(ep, target, behaviour)[:, 0])
        G.append(ep.outcome)
    o, w = mc.importance_sampling_curves(np.concatenate(rho).reshape(100, 10_000),
                                         np.concatenate(G).reshape(100, 10_000))
    mse_o, mse_w = ((o + 0.27726) ** 2).mean(0), ((w + 0.27726) ** 2).mean(0)
    return f"MSE at 10 / 10,000 episodes: ordinary {mse_o[9]:.3f} / {mse_o[-1]:.4f}, " \
           f"weighted {mse_w[9]:.3f} / {mse_w[-1]:.4f}"


def ours_7_2(rng: np.random.Generator) -> str:
    m = model_from_env(RandomWalkEnv(n_states=19, left_reward=-1.0))
    err = nstep.rms_errors(m, dp.uniform_policy(m.valid), m.true_values, rng, 100, 10,
                           2 ** np.arange(10), np.linspace(0, 1, 11)).mean(axis=(0, 1))
    n, a = np.unravel_index(err.argmin(), err.shape)
    return f"best n={2 ** n} alpha={a / 10:.1f} error {err.min():.3f}"


# ---- rlrun's commands ------------------------------------------------------------------------
PRESETS = {"3.2": ["experiment=sutton_barto/fig3_2"], "3.5": ["experiment=sutton_barto/fig3_5"],
           "4.1": ["experiment=sutton_barto/fig4_1"],
           "4.2": ["experiment=sutton_barto/fig4_2", "env.poisson_returns=false"],
           "4.2p": ["experiment=sutton_barto/fig4_2", "env.poisson_returns=true"],
           "4.3": ["experiment=sutton_barto/fig4_3"], "5.1": ["experiment=sutton_barto/fig5_1"],
           "5.2": ["experiment=sutton_barto/fig5_2"], "5.3": ["experiment=sutton_barto/fig5_3"],
           "7.2": ["experiment=sutton_barto/fig7_2"]}


def time_command(fig: str, work: Path, repeat: int, draw: bool = True
                 ) -> tuple[float, float, str]:
    """(command seconds, the run's own wall_time_s, a check) of `rlrun <preset>`, best of
    `repeat` fresh processes; `draw=False` adds algo.figures=false (the reference's plots
    are stubbed out, so this is the like-for-like run)."""
    best = (float("inf"), float("inf"), "")
    for i in range(repeat):
        run_dir = work / f"fig{fig}_{i}"
        cmd = [sys.executable, "-m", "rlrun", *PRESETS[fig], f"hydra.run.dir={run_dir}",
               "logger.progress=none", *([] if draw else ["algo.figures=false"])]
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        took = time.perf_counter() - t
        if out.returncode != 0:
            raise SystemExit(f"bench_sutton_barto: error: {' '.join(cmd[2:])} failed:"
                             f" {out.stderr.strip().splitlines()[-1:]}")
        res = json.loads((run_dir / "results.json").read_text())
        obj = f"{res.get('objective_metric', 'objective')} {res.get('objective'):.4g}"
        if took < best[0]:
            best = (took, float(res["wall_time_s"]), obj)
    return best


# ---- the reference ---------------------------------------------------------------------------
class _NoPlot:
    """Stands in for matplotlib.pyplot and seaborn: every call does nothing."""

    def __getattr__(self, name: str) -> _NoPlot:
        return self

    def __call__(self, *args, **kwargs) -> _NoPlot:
        return self

    def __getitem__(self, key) -> _NoPlot:
        return self

    def __iter__(self):
        return iter((self, self))


def load_reference(root: Path, rel: str, name: str) -> types.ModuleType:
    path = root / rel
    if not path.is_file():
        raise SystemExit(f"bench_sutton_barto: error: {path} not found; pass --reference "
                         f"pointing at a checkout of reinforcement-learning-an-introduction")
    if not hasattr(np, "int"):
        np.int = int  # removed in NumPy 1.24; the reference still uses it
    if importlib.util.find_spec("seaborn") is None:
        sys.modules.setdefault("seaborn", _NoPlot())  # type: ignore[arg-type]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for attr in ("plt", "sns"):
        if hasattr(module, attr):
            setattr(module, attr, _NoPlot())
    for attr in ("draw_image", "draw_policy"):
        if hasattr(module, attr):
            setattr(module, attr, _NoPlot())
    return module


def reference_runs(root: Path, scale: float, poisson_sweeps: list[int]
                   ) -> dict[str, Callable[[], tuple[float, str]]]:
    """figure -> a function returning (reference seconds, note)."""

    def timed(fn: Callable[[], object], factor: float = 1.0, note: str = "") -> tuple[float,
                                                                                      str]:
        np.random.seed(0)
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):  # its progress prints and bars
            fn()
        return (time.perf_counter() - t) * factor, note

    def scaled(n: int) -> int:
        return max(1, round(n * scale))

    note = f"x{1 / scale:g} of a {scale:g} run" if scale < 1 else ""

    def fig_3_2():
        g = load_reference(root, "chapter03/grid_world.py", "ref_grid_world_3")
        return timed(lambda: (g.figure_3_2_linear_system(), g.figure_3_2()))

    def fig_3_5():
        g = load_reference(root, "chapter03/grid_world.py", "ref_grid_world_3")
        return timed(g.figure_3_5)

    def fig_4_1():
        g = load_reference(root, "chapter04/grid_world.py", "ref_grid_world_4")
        return timed(g.figure_4_1)

    def fig_4_2():
        c = load_reference(root, "chapter04/car_rental.py", "ref_car_rental")
        return timed(lambda: c.figure_4_2(constant_returned_cars=True))

    def fig_4_2p():
        c = load_reference(root, "chapter04/car_rental.py", "ref_car_rental")
        value = np.zeros((21, 21))
        t = time.perf_counter()
        for i in range(21):  # one in-place evaluation sweep, Poisson returns
            for j in range(21):
                value[i, j] = c.expected_return([i, j], 0, value, False)
        sweep = time.perf_counter() - t
        t = time.perf_counter()
        for a in c.actions:  # one state's improvement step, all 11 moves
            c.expected_return([10, 10], a, value, False)
        improve = (time.perf_counter() - t) * 441
        rounds = len(poisson_sweeps)
        return sweep * sum(poisson_sweeps) + improve * rounds, \
            f"estimated: {sweep:.0f} s a sweep x {sum(poisson_sweeps)} sweeps"

    def fig_4_3():
        g = load_reference(root, "chapter04/gamblers_problem.py", "ref_gamblers")
        return timed(g.figure_4_3)

    def fig_5_1():
        b = load_reference(root, "chapter05/blackjack.py", "ref_blackjack")
        return timed(lambda: (b.monte_carlo_on_policy(scaled(10_000)),
                              b.monte_carlo_on_policy(scaled(500_000))), 1 / scale, note)

    def fig_5_2():
        b = load_reference(root, "chapter05/blackjack.py", "ref_blackjack")
        return timed(lambda: b.monte_carlo_es(scaled(500_000)), 1 / scale, note)

    def fig_5_3():
        b = load_reference(root, "chapter05/blackjack.py", "ref_blackjack")
        return timed(lambda: [b.monte_carlo_off_policy(10_000) for _ in range(scaled(100))],
                     100 / scaled(100), note)

    def fig_7_2():
        r = load_reference(root, "chapter07/random_walk.py", "ref_random_walk")
        if scale >= 1:
            return timed(r.figure7_2)
        runs = scaled(100)  # its figure7_2 with fewer runs: the same loops, inlined
        steps, alphas = 2 ** np.arange(10), np.arange(0, 1.1, 0.1)

        def fewer():
            for _ in range(runs):
                for n in steps:
                    for alpha in alphas:
                        value = np.zeros(r.N_STATES + 2)
                        for _ in range(10):
                            r.temporal_difference(value, n, alpha)
                            np.sqrt(np.sum(np.power(value - r.TRUE_VALUE, 2)) / r.N_STATES)
        return timed(fewer, 100 / runs, note)

    return {"3.2": fig_3_2, "3.5": fig_3_5, "4.1": fig_4_1, "4.2": fig_4_2, "4.2p": fig_4_2p,
            "4.3": fig_4_3, "5.1": fig_5_1, "5.2": fig_5_2, "5.3": fig_5_3, "7.2": fig_7_2}


def best_of(fn: Callable[[], str], repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, default=None,
                   help="checkout of ShangtongZhang/reinforcement-learning-an-introduction "
                        "(without it only rlrun is timed)")
    p.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES),
                   help="4.2 is fixed returns, 4.2p Poisson returns")
    p.add_argument("--ref-scale", type=float, default=1.0,
                   help="fraction of the MC/TD reference workloads to run (time scaled up)")
    p.add_argument("--repeat", type=int, default=3, help="rlrun runs per figure (best kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-commands", action="store_true",
                   help="time the NumPy core only, not the rlrun commands")
    p.add_argument("--no-drawing", action="store_true",
                   help="run the commands with algo.figures=false (the reference's plotting"
                        " is stubbed out too)")
    args = p.parse_args(argv)
    if not 0 < args.ref_scale <= 1:
        p.error(f"--ref-scale={args.ref_scale} must be in (0, 1]")

    rng = np.random.default_rng(args.seed)
    ours: dict[str, Callable[[], str]] = {
        "3.2": ours_3_2, "3.5": ours_3_5, "4.1": ours_4_1,
        "4.2": lambda: ours_4_2(False), "4.2p": lambda: ours_4_2(True), "4.3": ours_4_3,
        "5.1": lambda: ours_5_1(rng), "5.2": lambda: ours_5_2(rng),
        "5.3": lambda: ours_5_3(rng), "7.2": lambda: ours_7_2(rng),
    }
    replica: dict[str, tuple[float, str]] = {}
    poisson_sweeps: list[int] = []
    for fig, poisson in (("4.2", False), ("4.2p", True)):
        if fig in args.figures:
            t = time.perf_counter()
            text, sweeps = ours_4_2_replica(poisson)
            replica[fig] = (time.perf_counter() - t, text)
            if poisson:
                poisson_sweeps = sweeps

    refs = {}
    if args.reference is not None:
        refs = reference_runs(args.reference.expanduser().resolve(), args.ref_scale,
                              poisson_sweeps)

    commands = not args.no_commands
    if commands:
        print(f"{'figure':7} {'command s':>9} {'run s':>7} {'core s':>7} {'reference s':>11}"
              f" {'speed-up':>8}  check (speed-up: reference / command)")
    else:
        print(f"{'figure':8} {'rlrun s':>9} {'reference s':>12} {'speed-up':>9}  check")
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        os.makedirs("images")  # the reference writes ../images from its chapter dirs
        os.makedirs("work")
        os.chdir("work")
        for fig in args.figures:
            t_ours, check = best_of(ours[fig], args.repeat)
            t_ref, note = refs[fig]() if fig in refs else (float("nan"), "")
            if commands:
                t_cmd, t_run, obj = time_command(fig, Path(tmp), args.repeat,
                                                 draw=not args.no_drawing)
                ratio = t_ref / t_cmd if fig in refs else float("nan")
                print(f"{fig:7} {t_cmd:9.2f} {t_run:7.2f} {t_ours:7.3f} {t_ref:11.3g}"
                      f" {ratio:7.2g}x  {check}; {obj}" + (f" [{note}]" if note else ""),
                      flush=True)
            else:
                ratio = t_ref / t_ours if fig in refs else float("nan")
                print(f"{fig:8} {t_ours:9.3f} {t_ref:12.1f} {ratio:8.0f}x  {check}"
                      + (f" [{note}]" if note else ""), flush=True)
            if fig in replica:
                t_rep, text = replica[fig]
                print(f"{'':8} {t_rep:9.3f} {'':12} {t_ref / t_rep:8.0f}x  {text} "
                      f"(the reference's algorithm, core)", flush=True)


if __name__ == "__main__":
    main()
