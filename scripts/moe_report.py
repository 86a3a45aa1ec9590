"""Tabulate a mixture-of-experts sweep (`rlrun -m experiment=moe/isoflop` or
`experiment=moe/router_balance`, or any sweep of `algo=lm` runs):

    python scripts/moe_report.py multirun/isoflop            # prints and writes moe_table.md

Table 1, one row per completed run: its FFN (dense, switch or mixtral with experts/top-k and
the aux-loss coefficient), parameters (total and active per token), steps and training FLOPs,
the final validation loss and perplexity, and the routing statistics averaged over the last
10% of logged points (`tail_mean`, so one noisy batch does not decide): load entropy, the
most-loaded expert's share, dropped tokens, the aux loss; and training tokens/s.

Table 2, validation perplexity at equal training FLOPs: each run's (eval/flops, eval/val_loss)
curve interpolated at 25/50/75/100% of the smallest final FLOP count among the runs, so runs
compare at the same compute even when a FLOP budget ends them a step apart.

Runs are found and read with `rlrun.report.index` (the same rules as `rlrun-report`); the
curves come from their scalars.parquet (event files for older runs).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from rlrun.report.index import _load_yaml, find_run_dirs, read_curve, read_run


def describe(cfg: dict) -> tuple[str, str]:
    """('mixtral 8x top-2', aux coefficient) from a run's resolved config."""
    net = cfg.get("network") or {}
    ffn = net.get("ffn", "?")
    if ffn == "dense":
        return f"dense d_ff={net.get('d_ff')}", "-"
    k = net.get("top_k") or (1 if ffn == "switch" else 2)
    cf = net.get("capacity_factor")
    cf = cf if cf is not None else (1.25 if ffn == "switch" else 0)
    cap = f", cf {cf}" if cf else ""
    return f"{ffn} {net.get('n_experts')}x top-{k}{cap}", str(net.get("aux_loss_coef"))


def val_at_flops(run_dir: Path, points: list[float]) -> list[float] | None:
    """Validation loss interpolated (linear in FLOPs) at `points`; None without curves."""
    f, v = read_curve(run_dir, "eval/flops"), read_curve(run_dir, "eval/val_loss")
    if f is None or v is None:
        return None
    flops = dict(zip(f[0], f[1], strict=True))
    xs = [flops[s] for s in v[0] if s in flops]
    ys = [y for s, y in zip(v[0], v[1], strict=True) if s in flops]
    if not xs:
        return None
    return [float(np.interp(p, xs, ys)) if p >= xs[0] else math.nan for p in points]


def tables(root: Path) -> str:
    runs = [read_run(p, root) for p in find_run_dirs(root)]
    done = [r for r in runs if r["raw_status"] == "completed" and "eval/val_loss" in r["_metrics"]]
    if not done:
        raise SystemExit(f"moe_report: no completed algo=lm runs under {root}")
    lines = ["| run | FFN | aux coef | params | active | steps | train FLOPs | val loss |"
             " val ppl | moe/entropy | moe/top1_share | moe/dropped_fraction | moe/aux_loss |"
             " tokens/s |", "|" + "---|" * 14]
    finals = []
    for r in done:
        cfg = _load_yaml(Path(r["run_dir"]) / ".hydra" / "config.yaml") or {}
        ffn, aux = describe(cfg)
        m = r["_metrics"]

        def get(tag: str, stat: str = "last", fmt: str = "{:.3f}", m=m) -> str:
            return fmt.format(m[tag][stat]) if tag in m else "-"

        finals.append(m["charts/flops"]["last"])
        lines.append(" | ".join([
            f"| {r['rel']}", ffn, aux, get("model/params", fmt="{:,.0f}"),
            get("model/active_params", fmt="{:,.0f}"), str(r["steps"]),
            get("charts/flops", fmt="{:.3g}"), get("eval/val_loss"), get("eval/val_ppl"),
            get("moe/entropy", "tail_mean"), get("moe/top1_share", "tail_mean"),
            get("moe/dropped_fraction", "tail_mean"), get("moe/aux_loss", "tail_mean"),
            get("charts/tokens_per_s", "tail_mean", "{:,.0f}")]) + " |")
    budget = min(finals)
    fracs = (0.25, 0.5, 0.75, 1.0)
    points = [f * budget for f in fracs]
    lines += ["", f"Validation perplexity at equal training FLOPs (interpolated; 100% ="
              f" {budget:.3g} FLOPs):", "",
              "| run | FFN | aux coef | " + " | ".join(f"{int(f * 100)}%" for f in fracs) + " |",
              "|" + "---|" * (3 + len(fracs))]
    for r in done:
        ffn, aux = describe(_load_yaml(Path(r["run_dir"]) / ".hydra" / "config.yaml") or {})
        vals = val_at_flops(Path(r["run_dir"]), points)
        cells = ["-"] * len(fracs) if vals is None else \
            ["-" if math.isnan(v) else f"{math.exp(v):.3f}" for v in vals]
        lines.append(f"| {r['rel']} | {ffn} | {aux} | " + " | ".join(cells) + " |")
    skipped = [r["rel"] for r in runs if r not in done]
    if skipped:
        lines += ["", f"Not completed (left out): {', '.join(skipped)}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Tabulate an rlrun MoE sweep directory.")
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="markdown file (DIR/moe_table.md)")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        print(f"moe_report: error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    text = tables(args.dir)
    print(text, end="")
    out = args.out or args.dir / "moe_table.md"
    out.write_text(text)
    print(f"(written to {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
