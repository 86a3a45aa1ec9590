"""The measurements of docs/lm.md#your-own-data: characters against BPE, the MoE race on BPE
shards, and fine-tuning from one domain to another. Every run is an ordinary `rlrun` run
(one process each, threads=1) under ROOT; a rerun skips the runs that completed, so the
script can be stopped and started again, and `report` tabulates whatever has finished.

    python scripts/lm_tokens_study.py prepare       # the shard folders (rlrun-prepare)
    python scripts/lm_tokens_study.py tokenizers    # chars vs BPE 512/2048/8192, equal FLOPs
    python scripts/lm_tokens_study.py moe           # dense/switch/mixtral on BPE, equal FLOPs
    python scripts/lm_tokens_study.py moe_long      # dense vs mixtral, 4x the budget, 1 seed
    python scripts/lm_tokens_study.py finetune      # docs -> stdlib source, vs from scratch
    python scripts/lm_tokens_study.py report        # the tables (ROOT/study.md)
    python scripts/lm_tokens_study.py all           # all of it, in that order

1. **tokenizers**: the default rlrun-prepare corpus (the stdlib's source and documentation,
   filters at their defaults) prepared four times, as characters (`tokenizer=char`) and as
   byte-level BPE of 512, 2048 and 8192 tokens: the same documents, the same validation
   split. The default model (`network=transformer`, 64-token windows, batches of 32) trains to
   the same training-FLOP budget (`algo.flop_budget`, `--flops`) on each, 3 seeds; the table
   is `eval/val_bpb` (bits per byte of the validation text) at the end, and at equal FLOPs
   (each run's curve interpolated at the smallest final FLOP count).
2. **moe**: `experiment=moe/isoflop` (dense, Switch 8x top-1, Mixtral 8x top-2 at equal
   active width) on the BPE shards of `--moe-vocab` tokens, 3 seeds, in bpb and perplexity
   (per token), the budget `--flops`. **moe_long**: dense against Mixtral at `--long-flops`
   (4x), seed 0 alone: whether the gap moves with compute.
3. **finetune**: Python's documentation topics (pydoc_data: the text `help()` shows) and the
   stdlib's `.py` source prepared as two corpora with one BPE tokenizer (trained on the
   documentation, `--ft-vocab` tokens; the source keeps its code: the symbol, word-length
   and word-count filters are off). A model pre-trained on the documentation for
   `--pretrain-steps` steps is fine-tuned on the source (`algo.init_from`) for
   `--ft-steps` steps, against the same model trained from scratch on the source for the
   same steps; validation bpb on the source at equal steps, 3 seeds (each fine-tune starts
   from the pre-training of its own seed).

Wall times depend on the machine's load; the runs record their own (results.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

VOCABS = (512, 2048, 8192)
MOE_FFNS = ("dense", "switch", "mixtral")


def sh(args: list[str], echo: bool = True) -> None:
    if echo:
        print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


# ---- data --------------------------------------------------------------------------------
def prepare_all(root: Path, args: argparse.Namespace) -> None:
    from rlrun.prepare import inputs, pipeline
    from rlrun.prepare.settings import Settings

    data = root / "data"
    for name, tok in [("char", "char"), *((f"bpe{v}", "bpe") for v in VOCABS)]:
        vocab = int(name[3:]) if tok == "bpe" else 8192
        pipeline.prepare([], Settings(out=str(data / name), tokenizer=tok, vocab_size=vocab,
                                      progress=False), echo=print)
    # the fine-tuning pair: documentation (its own BPE), then source with that tokenizer
    docs_txt = data / "docs_txt"
    if not docs_txt.is_dir():
        tmp = data / ".docs_txt"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for k, text in inputs.topics_documents():
            (tmp / f"{k}.txt").write_text(text, encoding="utf-8")
        tmp.rename(docs_txt)
    pipeline.prepare([str(docs_txt)], Settings(out=str(data / "docs"), vocab_size=args.ft_vocab,
                                               progress=False), echo=print)
    root_src = Path(sysconfig.get_paths()["stdlib"])
    py = [s.path for s in inputs.default_sources() if s.path.endswith(".py")
          and Path(s.path).is_relative_to(root_src)]
    pipeline.prepare(py, Settings(out=str(data / "source"), tokenizer=str(
        data / "docs" / "tokenizer.json"), max_symbol_ratio=None, max_mean_word_length=None,
        min_words=10, progress=False), echo=print)


# ---- runs --------------------------------------------------------------------------------
def status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "results.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def train(run_dir: Path, overrides: list[str]) -> None:
    """One rlrun run into `run_dir`, unless it completed before (a stopped one starts again)."""
    if status(run_dir) == "completed":
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    t = time.time()
    sh([sys.executable, "-m", "rlrun", *overrides, "threads=1", "logger.progress=none",
        f"hydra.run.dir={run_dir}"])
    print(f"  ({time.time() - t:.0f} s)", flush=True)


def run_tokenizers(root: Path, args: argparse.Namespace) -> None:
    data = root / "data"
    for seed in args.seeds:
        for name in ["char", *(f"bpe{v}" for v in VOCABS)]:
            train(root / "tokenizers" / f"{name}_s{seed}", [
                "algo=lm", "env=tokens", f"env.path={data / name}", f"seed={seed}",
                "algo.total_steps=100000", f"algo.flop_budget={args.flops}",
                "algo.eval_every=100", f"algo.eval_batches={args.eval_batches}",
                "algo.sample_chars=0", "algo.attention_stats=false"])


def run_moe(root: Path, args: argparse.Namespace) -> None:
    data = root / "data" / f"bpe{args.moe_vocab}"
    for seed in args.seeds:
        for ffn in MOE_FFNS:
            train(root / "moe" / f"{ffn}_s{seed}", [
                "experiment=moe/isoflop", "env=tokens", f"env.path={data}", f"seed={seed}",
                f"network.ffn={ffn}", f"algo.flop_budget={args.flops}",
                f"algo.eval_batches={args.eval_batches}", "algo.sample_chars=0",
                "algo.attention_stats=false"])


def run_moe_long(root: Path, args: argparse.Namespace) -> None:
    data = root / "data" / f"bpe{args.moe_vocab}"
    for ffn in ("dense", "mixtral"):
        train(root / "moe_long" / f"{ffn}_s0", [
            "experiment=moe/isoflop", "env=tokens", f"env.path={data}", "seed=0",
            f"network.ffn={ffn}", f"algo.flop_budget={args.long_flops}", "algo.eval_every=200",
            f"algo.eval_batches={args.eval_batches}", "algo.sample_chars=0",
            "algo.attention_stats=false"])


def run_finetune(root: Path, args: argparse.Namespace) -> None:
    data = root / "data"
    common = ["algo=lm", "env=tokens", "algo.sample_chars=0", "algo.attention_stats=false",
              f"algo.eval_batches={args.eval_batches}", "algo.eval_every=50"]
    for seed in args.seeds:
        pre = root / "finetune" / f"pretrain_docs_s{seed}"
        train(pre, [*common, f"env.path={data / 'docs'}", f"seed={seed}",
                    f"algo.total_steps={args.pretrain_steps}"])
        for name, extra in (("finetune", [f"algo.init_from={pre}"]), ("scratch", [])):
            train(root / "finetune" / f"{name}_source_s{seed}", [
                *common, f"env.path={data / 'source'}", f"seed={seed}",
                f"algo.total_steps={args.ft_steps}", *extra])


# ---- tables ------------------------------------------------------------------------------
def curve(run_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray] | None:
    from rlrun.report.index import read_curve

    c = read_curve(run_dir, tag)
    return None if c is None else (np.array(c[0]), np.array(c[1]))


def at_flops(run_dir: Path, tag: str, flops: float) -> float:
    f, v = curve(run_dir, "eval/flops"), curve(run_dir, tag)
    if f is None or v is None:
        return math.nan
    by_step = dict(zip(f[0], f[1], strict=True))
    xs = np.array([by_step[s] for s in v[0] if s in by_step])
    ys = np.array([y for s, y in zip(v[0], v[1], strict=True) if s in by_step])
    return float(np.interp(flops, xs, ys)) if len(xs) and flops >= xs[0] else math.nan


def at_step(run_dir: Path, tag: str, step: int) -> float:
    c = curve(run_dir, tag)
    if c is None:
        return math.nan
    hit = np.flatnonzero(c[0] == step)
    return float(c[1][hit[0]]) if len(hit) else math.nan


def bpb_on(run_dir: Path, data: Path, eval_batches: int) -> float:
    """Validation bpb of a run's last checkpoint on another corpus's shards (the windows the
    runs on that corpus score): the pre-trained model on the second domain, before any
    fine-tuning step."""
    import torch
    from omegaconf import OmegaConf

    from rlrun.algos.lm import evaluate
    from rlrun.core.checkpoint import load_checkpoint
    from rlrun.data.lm_data import ShardData
    from rlrun.nets import build_network
    from rlrun.schemas.data import TokensConfig

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    shards = ShardData(TokensConfig(path=str(data)), int(cfg.network.block_size),
                       np.random.default_rng(0))
    model = build_network(cfg.network, vocab_size=shards.vocab_size)
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["loop"]["model"])
    with torch.no_grad():
        return evaluate(model, shards.eval_batches(int(cfg.algo.batch_size), eval_batches),
                        torch.device("cpu"), shards.token_bytes)[1]


def last(run_dir: Path, tag: str) -> float:
    try:
        return float(json.loads((run_dir / "results.json").read_text())["metrics"][tag]["last"])
    except (OSError, ValueError, KeyError):
        return math.nan


def mean_sd(xs: list[float]) -> str:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f} (1 seed)"
    return f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1):.3f}" + (
        f" ({len(xs)} seeds)" if len(xs) != 3 else "")


def done(dirs: list[Path]) -> list[Path]:
    return [d for d in dirs if status(d) == "completed"]


def meta(data: Path) -> dict:
    return json.loads((data / "meta.json").read_text())


def report(root: Path, args: argparse.Namespace) -> str:
    out = [f"# rlrun LM token study ({root})", ""]
    tok_root = root / "tokenizers"
    names = ["char", *(f"bpe{v}" for v in VOCABS)]
    runs = {n: done([tok_root / f"{n}_s{s}" for s in args.seeds]) for n in names}
    finals = [last(d, "charts/flops") for rs in runs.values() for d in rs]
    if finals:
        budget = min(finals)
        out += [f"## Characters against BPE at equal training FLOPs ({budget:.3g})", "",
                "| tokens | vocab | bytes/token (val) | params | steps | val bpb at equal FLOPs |"
                " val bpb (last) | val loss (nats/token) |", "|" + "---|" * 8]
        for n in names:
            if not runs[n]:
                continue
            m = meta(root / "data" / n)
            val = m["splits"]["val"]
            out.append(" | ".join([
                f"| {'characters' if n == 'char' else 'BPE'}", str(m["vocab_size"]),
                f"{val['bytes'] / val['tokens']:.2f}",
                f"{last(runs[n][0], 'model/params'):,.0f}",
                f"{np.mean([_steps(d) for d in runs[n]]):.0f}",
                mean_sd([at_flops(d, "eval/val_bpb", budget) for d in runs[n]]),
                mean_sd([last(d, "eval/val_bpb") for d in runs[n]]),
                mean_sd([last(d, "eval/val_loss") for d in runs[n]])]) + " |")
        out.append("")
    moe_root = root / "moe"
    mruns = {f: done([moe_root / f"{f}_s{s}" for s in args.seeds]) for f in MOE_FFNS}
    finals = [last(d, "charts/flops") for rs in mruns.values() for d in rs]
    if finals:
        budget = min(finals)
        out += [f"## Dense against MoE on BPE-{args.moe_vocab} shards at equal training FLOPs"
                f" ({budget:.3g})", "",
                "| FFN | params | active | val bpb | val ppl (per token) | val loss |",
                "|" + "---|" * 6]
        for f, rs in mruns.items():
            if not rs:
                continue
            out.append(" | ".join([
                f"| {f}", f"{last(rs[0], 'model/params'):,.0f}",
                f"{last(rs[0], 'model/active_params'):,.0f}",
                mean_sd([at_flops(d, "eval/val_bpb", budget) for d in rs]),
                mean_sd([math.exp(at_flops(d, "eval/val_loss", budget)) for d in rs]),
                mean_sd([at_flops(d, "eval/val_loss", budget) for d in rs])]) + " |")
        dense = [math.exp(at_flops(d, "eval/val_loss", budget)) for d in mruns["dense"]]
        dense_bpb = [at_flops(d, "eval/val_bpb", budget) for d in mruns["dense"]]
        for f in ("switch", "mixtral"):
            moe = [math.exp(at_flops(d, "eval/val_loss", budget)) for d in mruns[f]]
            moe_bpb = [at_flops(d, "eval/val_bpb", budget) for d in mruns[f]]
            if dense and moe:
                gap = np.nanmean(moe) / np.nanmean(dense) - 1
                gap_bpb = np.nanmean(moe_bpb) / np.nanmean(dense_bpb) - 1
                out.append(f"\n{f} against dense (means over seeds): perplexity"
                           f" {100 * gap:+.1f}%, bpb {100 * gap_bpb:+.1f}% (negative: the MoE"
                           " is better)")
        out.append("")
    long = {f: done([root / "moe_long" / f"{f}_s0"]) for f in ("dense", "mixtral")}
    if long["dense"] and long["mixtral"]:
        budget = min(last(d[0], "charts/flops") for d in long.values())
        out += [f"## Dense against Mixtral at {budget:.3g} training FLOPs (seed 0)", "",
                "| FFN | steps | " + " | ".join(f"val ppl / bpb at {int(100 * q)}%"
                                             for q in (0.25, 0.5, 1.0)) + " |",
                "|" + "---|" * 5]
        for f, (d,) in long.items():
            cells = [f"{math.exp(at_flops(d, 'eval/val_loss', q * budget)):.2f} /"
                     f" {at_flops(d, 'eval/val_bpb', q * budget):.3f}" for q in (0.25, 0.5, 1.0)]
            out.append(f"| {f} | {_steps(d)} | " + " | ".join(cells) + " |")
        out.append("")
    ft_root = root / "finetune"
    ft = {n: done([ft_root / f"{n}_source_s{s}" for s in args.seeds])
          for n in ("finetune", "scratch")}
    if ft["finetune"] or ft["scratch"]:
        steps = sorted({int(s) for rs in ft.values() for d in rs
                        for s in (curve(d, "eval/val_bpb") or ([], []))[0]})
        out += [f"## Fine-tuning on the stdlib source from a model pre-trained on the"
                f" documentation ({args.pretrain_steps} steps), against from scratch", "",
                "| step | " + " | ".join(f"{n} val bpb" for n in ft) + " |",
                "|" + "---|" * (1 + len(ft))]
        for step in steps:
            out.append(f"| {step} | " + " | ".join(
                mean_sd([at_step(d, "eval/val_bpb", step) for d in rs]) for rs in ft.values())
                + " |")
        pre = done([ft_root / f"pretrain_docs_s{s}" for s in args.seeds])
        if pre:
            zero = [bpb_on(d, root / "data" / "source", args.eval_batches) for d in pre]
            out.append(f"\nStep 0 of the fine-tuning, the pre-trained models on the source:"
                       f" {mean_sd(zero)}")
            out.append(f"\nThe pre-trained models' own validation bpb on the documentation:"
                       f" {mean_sd([last(d, 'eval/val_bpb') for d in pre])}")
        out.append("")
    wall = [json.loads((d / "results.json").read_text()).get("wall_time_s", 0)
            for d in root.glob("*/*") if status(d) == "completed"]
    out.append(f"{len(wall)} runs, {sum(wall) / 60:.0f} min of wall time in all.")
    return "\n".join(out) + "\n"


def _steps(run_dir: Path) -> int:
    return int(json.loads((run_dir / "results.json").read_text()).get("steps", 0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("prepare", "tokenizers", "moe", "moe_long", "finetune",
                                     "report", "all"))
    ap.add_argument("--root", type=Path, default=Path("runs/tokens_study"))
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--flops", type=float, default=3e12, help="training FLOPs of each run of"
                    " `tokenizers` and `moe`")
    ap.add_argument("--eval-batches", type=int, default=32, help="validation batches of 32"
                    " windows per evaluation")
    ap.add_argument("--moe-vocab", type=int, default=2048, choices=VOCABS)
    ap.add_argument("--long-flops", type=float, default=1.2e13, help="moe_long's budget")
    ap.add_argument("--ft-vocab", type=int, default=2048)
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--ft-steps", type=int, default=300)
    args = ap.parse_args(argv)
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    steps = {"prepare": [prepare_all], "tokenizers": [run_tokenizers], "moe": [run_moe],
             "moe_long": [run_moe_long], "finetune": [run_finetune], "report": [],
             "all": [prepare_all, run_tokenizers, run_moe, run_finetune, run_moe_long]
             }[args.what]
    for step in steps:
        step(root, args)
    text = report(root, args)
    print(text, end="")
    (root / "study.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
