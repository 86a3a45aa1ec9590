"""Evaluation curves of deep RL sweeps, one panel per sweep, one line per seed.

    rlrun -m algo=ppo env=CartPole-v1 seed=0,1,2 hydra.sweep.dir=multirun/ppo_cartpole
    rlrun -m algo=sac env=Pendulum-v1 seed=0,1,2 algo.eval_every=2000 \\
        hydra.sweep.dir=multirun/sac_pendulum
    python scripts/deep_rl_figure.py multirun/ppo_cartpole multirun/sac_pendulum \\
        --out docs/figures/deep_rl_eval.png

Per-seed lines rather than a mean band: with three seeds the spread is the story, and a
target such as "every seed reaches 500" is read off the lowest line.

Needs the plot extra (matplotlib): pip install 'rlrun[plot]'. Without it the script says so in
one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlrun.report.index import find_run_dirs, read_curve
from rlrun.report.plots import PLOT_EXTRA, require_matplotlib

TARGETS = {("ppo", "CartPole-v1"): 500.0, ("sac", "Pendulum-v1"): -200.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=f"Needs the plot extra (matplotlib): {PLOT_EXTRA}")
    p.add_argument("sweeps", nargs="+", type=Path)
    p.add_argument("--tag", default="eval/return")
    p.add_argument("--out", type=Path, default=Path("deep_rl_eval.png"))
    args = p.parse_args()
    require_matplotlib("deep_rl_figure.py")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.sweeps), figsize=(5.5 * len(args.sweeps), 4),
                             squeeze=False)
    for ax, sweep in zip(axes[0], args.sweeps, strict=True):
        name = ""
        for run in find_run_dirs(sweep):
            res = json.loads((run / "results.json").read_text())
            curve = read_curve(run, args.tag)
            if curve is None:
                continue
            name = (res["algo"], res["env"])
            ax.plot(*curve, marker="o", ms=3, label=f"seed {res['seed']}")
        if name in TARGETS:
            ax.axhline(TARGETS[name], color="grey", ls="--", lw=1, label="target")
        ax.set_title(f"{name[0]} on {name[1]}" if name else str(sweep))
        ax.set_xlabel("env steps")
        ax.set_ylabel(args.tag)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
