"""Sanity check of `rlrun-eval RUN text=... explain=true` (docs/eval.md): do the attributions
point at the tokens the prediction rests on?

On the **test split** of a text classifier run, for each text: the predicted class c and its
probability p; then, for k = 1, 3, 5, delete (remove, closing the gap) the k tokens with the
largest integrated-gradient attribution toward c (`rlrun.explain.attribute`, as
explain=true computes it), and, separately, k tokens drawn at random (`--draws` draws,
averaged), and measure the drop of p(c). Texts with at most 5 tokens read are left out (a
deletion of 5 would leave nothing). Attributions that do not beat random deletion at every k
are not shipped.

    python scripts/explain_deletion.py RUN_DIR [--draws 5] [--json OUT.json]
    python scripts/explain_deletion.py --train OUT_DIR   # train the default classifier first

Both curves (mean drop and its standard error over texts) are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

KS = (1, 3, 5)


def delete(ids, positions):
    """ids (T,) with the tokens at `positions` removed and padding appended."""
    import torch

    keep = torch.ones(len(ids), dtype=torch.bool)
    keep[list(positions)] = False
    out = torch.zeros_like(ids)
    rest = ids[keep]
    out[:len(rest)] = rest
    return out


def probs_of(clf, ids, batch: int = 256):
    import torch

    dev = next(clf.model.parameters()).device
    with torch.no_grad():
        return torch.cat([clf.model(ids[i:i + batch].to(dev))[0].float().softmax(-1).cpu()
                          for i in range(0, len(ids), batch)])


def deletion_curves(clf, texts: list[str], draws: int = 5, seed: int = 0,
                    chunk: int = 16) -> dict:
    """Mean drop of the predicted class's probability when deleting the top-k attributed
    tokens vs k random tokens, for k in KS."""
    import torch

    from rlrun.data.text_classification import PAD
    from rlrun.explain import attribute

    ids = clf.encode(texts)
    n_read = (ids != PAD).sum(1)
    ids = ids[n_read > max(KS)]
    n_read = n_read[n_read > max(KS)]
    p0 = probs_of(clf, ids)
    pred = p0.argmax(-1)
    t = time.perf_counter()
    attr, delta = zip(*(attribute(clf, ids[i:i + chunk], pred[i:i + chunk])
                        for i in range(0, len(ids), chunk)), strict=True)
    attr, delta = torch.cat(attr), torch.cat(delta)
    seconds = time.perf_counter() - t
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(len(ids))
    base = p0[rows, pred]
    out: dict = {"texts": len(ids), "draws": draws, "attribution_s_per_text": seconds / len(ids),
                 "abs_delta_median": float(delta.abs().median()),
                 "abs_delta_max": float(delta.abs().max()), "k": list(KS),
                 "attributed": [], "random": [], "attributed_se": [], "random_se": [],
                 "wins": []}
    for k in KS:
        masked = attr.masked_fill(ids == PAD, float("-inf"))
        top = masked.topk(k, dim=1).indices
        d_top = base - probs_of(clf, torch.stack([delete(ids[i], top[i].tolist())
                                                  for i in range(len(ids))]))[rows, pred]
        d_rand = torch.zeros(len(ids))
        for _ in range(draws):
            picks = [torch.randperm(int(n_read[i]), generator=gen)[:k].tolist()
                     for i in range(len(ids))]
            d_rand += base - probs_of(clf, torch.stack([delete(ids[i], picks[i])
                                                        for i in range(len(ids))]))[rows, pred]
        d_rand /= draws
        n = len(ids) ** 0.5
        out["attributed"].append(float(d_top.mean()))
        out["random"].append(float(d_rand.mean()))
        out["attributed_se"].append(float(d_top.std() / n))
        out["random_se"].append(float(d_rand.std() / n))
        out["wins"].append(float((d_top > d_rand).double().mean()))
    return out


def load(run: Path):
    """The run's classifier and test split, read as rlrun-eval reads a run."""
    from rlrun.data.text_classification import load_splits
    from rlrun.eval import load_hook, open_run

    ctx, hook, _, _ = open_run(run, {}, modes=("labels",), prog="explain_deletion")
    clf = load_hook(ctx, hook)
    return clf, [t for t, _ in load_splits(ctx.env)[2]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, nargs="?")
    ap.add_argument("--train", type=Path, help="train the default classifier into this dir")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    run = args.run
    if run is None:
        if args.train is None:
            ap.error("give RUN_DIR or --train DIR")
        run = args.train
        if not (run / "checkpoints" / "last.pt").is_file():
            subprocess.run([sys.executable, "-m", "rlrun", "algo=text_classifier", "threads=1",
                            "logger.progress=none", f"hydra.run.dir={run}"], check=True)
    clf, texts = load(run)
    res = deletion_curves(clf, texts, args.draws)
    res["run"] = str(run)
    print(f"{res['texts']} test texts with more than {max(KS)} tokens read;"
          f" {res['attribution_s_per_text'] * 1000:.1f} ms of attribution per text;"
          f" |convergence delta| median {res['abs_delta_median']:.2g},"
          f" max {res['abs_delta_max']:.2g}")
    print("| k | drop, top-k attributed deleted | drop, k random deleted | texts where"
          " attributed > random |\n|---|---|---|---|")
    for i, k in enumerate(KS):
        print(f"| {k} | {res['attributed'][i]:.3f} ± {res['attributed_se'][i]:.3f} |"
              f" {res['random'][i]:.3f} ± {res['random_se'][i]:.3f} | {res['wins'][i]:.0%} |")
    beats = all(a > r for a, r in zip(res["attributed"], res["random"], strict=True))
    print("attributions beat random deletion at every k" if beats else
          "ATTRIBUTIONS DO NOT BEAT RANDOM DELETION")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    sys.exit(0 if beats else 1)


if __name__ == "__main__":
    main()
