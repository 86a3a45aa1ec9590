"""Stay on topic with classifier-free guidance (Sanchez et al. 2023), end to end with rlrun.

    python scripts/cfg_on_topic.py --out runs/cfg_on_topic                  # 3 seeds
    python scripts/cfg_on_topic.py --out runs/cfg_on_topic --seeds 0 --n 5  # a quick look

1. A text classifier on the labelled documents: `rlrun algo=text_classifier
   env=stdlib_docstrings` (standard-library docstrings, labelled by package; seed 0, trained
   once), its held-out test accuracy printed as the yardstick's own error.
2. Per seed, a character LM on the same documents, each under its label as a header line
   (`rlrun algo=lm env=labelled_docstrings`: the classifier's training split only, so the
   classifier's test documents are unseen by both). `network.block_size` is raised to 128 so
   that header and continuation fit in one window (past it the context is cut and the header
   would be forgotten), and the budget to 2000 steps (see `LM`). How much the LM reads its
   header is measured too: `header_accuracy`, the share of the classifier's test documents
   whose likelihood is highest under their own header.
3. For every class c and every gamma of `--gammas`: `--n` continuations of the bare header
   "[c]\\n" (`rlrun.data.labelled_text.header`), `--chars` characters at `--temperature`,
   decoded with `rlrun.nets.decode.generate(..., guidance_scale=gamma)`: log p(x|uncond) +
   gamma (log p(x|header) - log p(x|uncond)), the unconditional branch being the header's
   last character, the newline, alone (transformers' convention). The i-th continuation of a
   class uses the same random generator at every gamma, so gamma is all that differs; gamma = 1
   is plain decoding. Each continuation is cut at its first blank line: there the corpus ends a
   document and starts another, of any class.
4. `on_topic`: the share of continuations the classifier labels c. `ppl_uncond`: the
   perplexity of the continuations under the unconditional model, the same LM given only the
   newline (exp of the mean negative log-likelihood per character), so that "more on topic"
   and "less fluent" are both visible; `ppl_cond` is the same given the header.
5. A reference row: the classifier's test documents, cut to the same length, scored alike.

Output: `on_topic.json` (every number and every continuation) in `--out`, a Markdown table
(mean and standard deviation over seeds) on stdout. Runs already completed in `--out` are
reused, so the script can be rerun after a stop or with other gammas.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from rlrun.core import state as tracked_state
from rlrun.core.checkpoint import load_checkpoint
from rlrun.core.config import validate
from rlrun.data.labelled_text import header
from rlrun.data.text import CharCorpus
from rlrun.data.text_classification import classify, load_splits
from rlrun.nets import build_network
from rlrun.nets.decode import generate
from rlrun.schemas.data import LabelledTextConfig, TextClassificationConfig

# block 128: the header and a continuation fit in one window; 2000 steps: at the default 600 the
# LM had not learnt to read the header at all (as a classifier of held-out documents by their
# likelihood under each header it was at chance, 9% for 11 classes), so there was nothing for
# guidance to amplify.
LM = ["network.block_size=128", "algo.total_steps=2000"]


def train(run_dir: Path, args: list[str]) -> float:
    """`rlrun ARGS` into run_dir unless a run of the same ARGS completed there; its wall
    time (a run cut short, or one of other settings, is trained again)."""
    done, same = run_dir / "results.json", run_dir / "bench_args.json"
    if done.is_file() and json.loads(done.read_text()).get("status") == "completed" and \
            same.is_file() and json.loads(same.read_text()) == args:
        return float(json.loads(done.read_text())["wall_time_s"])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [sys.executable, "-m", "rlrun", *args, "logger.progress=none",
           f"hydra.run.dir={run_dir}"]
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    same.write_text(json.dumps(args))
    return float(json.loads(done.read_text())["wall_time_s"])


def load_lm(run_dir: Path) -> tuple[Any, CharCorpus, LabelledTextConfig]:
    """The trained LM of a run dir (eval mode), its corpus and its env settings."""
    node = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    env = validate(node.env, LabelledTextConfig, "env")
    corpus = CharCorpus(env, int(node.network.block_size))
    model = build_network(node.network, vocab_size=corpus.vocab_size)
    tracked_state.load(model, load_checkpoint(run_dir / "checkpoints" / "last.pt")["loop"]
                       ["model"])
    return model.eval(), corpus, env


@torch.no_grad()
def nll(model: Any, context: list[int], ids: list[int]) -> float:
    """-sum log p(ids | context) in nats, one forward (context + ids fit in a window)."""
    if not ids:
        return 0.0
    seq = torch.tensor([context + ids])
    logits, _ = model(seq[:, :-1])
    logp = logits[0, len(context) - 1:].float().log_softmax(-1)
    return -float(logp.gather(1, seq[0, len(context):, None]).sum())


def cut(text: str) -> str:
    """A continuation up to the end of its document (the corpus's blank line)."""
    return text.split("\n\n", 1)[0].strip()


def score(model: Any, corpus: CharCorpus, clf: Path, rows: list[tuple[str, str]]) -> dict:
    """on_topic and perplexities of (class, text) rows."""
    texts = [t for _, t in rows]
    pred = classify(clf, [t if t else " " for t in texts])
    hit = [p == c and bool(t) for (c, t), p in zip(rows, pred, strict=True)]
    newline = corpus.encode("\n")
    n_chars = sum(len(corpus.encode(t)) for t in texts) or 1
    unc = sum(nll(model, newline, corpus.encode(t)) for t in texts)
    cond = sum(nll(model, corpus.encode(header(c)), corpus.encode(t)) for c, t in rows)
    return {"on_topic": sum(hit) / len(rows), "ppl_uncond": math.exp(unc / n_chars),
            "ppl_cond": math.exp(cond / n_chars), "mean_chars": n_chars / len(rows),
            "empty": sum(not t for t in texts) / len(rows)}


def header_accuracy(model: Any, corpus: CharCorpus, classes: list[str],
                    docs: list[tuple[str, str]]) -> float:
    """The LM as a classifier: the share of (class, text) rows whose text is most likely
    under its own class's header (what guidance has to amplify)."""
    hits = 0
    for c, t in docs:
        ids = corpus.encode(t)
        scores = {k: nll(model, corpus.encode(header(k)), ids) for k in classes}
        hits += min(scores, key=scores.get) == c
    return hits / len(docs)


def continuations(model: Any, corpus: CharCorpus, classes: list[str], gamma: float, n: int,
                  chars: int, temperature: float, seed: int) -> list[tuple[str, str]]:
    """n continuations of each class's header at guidance scale gamma (1: plain decoding)."""
    rows = []
    for k, c in enumerate(classes):
        prompt = corpus.encode(header(c))
        for i in range(n):
            g = torch.Generator().manual_seed(seed * 1_000_003 + k * 1009 + i)
            ids = generate(model, prompt, chars, temperature, g,
                           guidance_scale=None if gamma == 1 else gamma)
            rows.append((c, cut(corpus.decode(ids))))
    return rows


def table(results: dict[int, dict], gammas: list[float], real: dict) -> str:
    def ms(values: list[float], fmt: str, scale: float = 1) -> str:
        values = [scale * v for v in values]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{format(statistics.mean(values), fmt)} +- {format(sd, fmt)}"

    lines = ["| gamma | eval/on_topic | perplexity, unconditional | perplexity, given the"
             " header | chars per continuation |", "|---|---|---|---|---|"]
    for g in gammas:
        rs = [r["gammas"][str(g)] for r in results.values()]
        lines.append(f"| {g:g} | {ms([r['on_topic'] for r in rs], '.1f', 100)} % |"
                     f" {ms([r['ppl_uncond'] for r in rs], '.2f')} |"
                     f" {ms([r['ppl_cond'] for r in rs], '.2f')} |"
                     f" {statistics.mean(r['mean_chars'] for r in rs):.0f} |")
    rs = list(real.values())
    lines.append(f"| real test documents (LM's header accuracy"
                 f" {ms([r['header_accuracy'] for r in rs], '.1f', 100)} %) |"
                 f" {ms([r['on_topic'] for r in rs], '.1f', 100)} % |"
                 f" {ms([r['ppl_uncond'] for r in rs], '.2f')} |"
                 f" {ms([r['ppl_cond'] for r in rs], '.2f')} |"
                 f" {statistics.mean(r['mean_chars'] for r in rs):.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/cfg_on_topic"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--gammas", type=float, nargs="+", default=[1.0, 1.5, 3.0])
    p.add_argument("--n", type=int, default=20, help="continuations per class and gamma")
    p.add_argument("--chars", type=int, default=100, help="characters per continuation")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lm", nargs="*", default=[], help="more overrides of the LM runs")
    p.add_argument("--clf", nargs="*", default=[], help="more overrides of the classifier run")
    p.add_argument("--env", nargs="*", default=[],
                   help="env overrides both runs share (env.packages=..., env.limit=...)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    common = [f"threads={args.threads}", *args.env]
    clf = args.out / "classifier"
    walls = {"classifier": train(clf, ["algo=text_classifier", "env=stdlib_docstrings",
                                       "seed=0", *common, *args.clf])}
    clf_res = json.loads((clf / "results.json").read_text())["metrics"]
    test_acc = clf_res.get("test/accuracy", {}).get("last")
    results: dict[int, dict] = {}
    real: dict[int, dict] = {}
    for s in args.seeds:
        run = args.out / f"lm_seed{s}"
        walls[f"lm_seed{s}"] = train(run, ["algo=lm", "env=labelled_docstrings", f"seed={s}",
                                           *LM, *common, *args.lm])
        model, corpus, env = load_lm(run)
        if len(header(max(env_classes(env), key=len))) + args.chars > model.block_size:
            raise SystemExit(f"--chars {args.chars} and the longest header do not fit in"
                             f" network.block_size={model.block_size}: the header would be cut")
        classes = env_classes(env)
        results[s] = {"gammas": {}, "samples": {}}
        for g in args.gammas:
            t0 = time.perf_counter()
            rows = continuations(model, corpus, classes, g, args.n, args.chars,
                                 args.temperature, s)
            seconds = time.perf_counter() - t0
            r = score(model, corpus, clf, rows)
            r["decode_s"] = seconds
            results[s]["gammas"][str(g)] = r
            results[s]["samples"][str(g)] = rows
            print(f"seed {s} gamma {g:g}: on topic {r['on_topic']:.1%}, perplexity"
                  f" {r['ppl_uncond']:.2f} (given the header {r['ppl_cond']:.2f}),"
                  f" {seconds:.0f} s", flush=True)
        test = load_splits(classifier_env(env))[2]
        known = set(corpus.stoi)
        docs = [(c, "".join(ch for ch in t.strip() if ch in known)[:args.chars])
                for t, c in test]
        real[s] = score(model, corpus, clf, docs)
        real[s]["header_accuracy"] = header_accuracy(model, corpus, classes, docs)
        print(f"seed {s}: the LM's own header accuracy on the test documents"
              f" {real[s]['header_accuracy']:.1%} (chance {1 / len(classes):.1%})", flush=True)
    out = {"seeds": args.seeds, "gammas": args.gammas, "n": args.n, "chars": args.chars,
           "temperature": args.temperature, "threads": args.threads, "lm_overrides":
           [*LM, *args.lm], "env_overrides": args.env, "classifier_test_accuracy": test_acc,
           "wall_s": walls, "results": results, "real_test_documents": real}
    (args.out / "on_topic.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{len(classes)} classes x {args.n} continuations of {args.chars} characters per"
          f" gamma, temperature {args.temperature}, seeds {args.seeds}; classifier test"
          f" accuracy {test_acc:.1%}\n" if test_acc is not None else "")
    print(table(results, args.gammas, real))


def env_classes(env: LabelledTextConfig) -> list[str]:
    """The class names, sorted, as the training split holds them."""
    return sorted({c for _, c in load_splits(classifier_env(env))[0]})


def classifier_env(env: LabelledTextConfig) -> TextClassificationConfig:
    """The classifier's data settings that the LM's env shares (the same documents)."""
    shared = {k: getattr(env, k) for k in ("source", "path", "text_column", "label_column",
                                           "packages", "min_chars", "val_fraction",
                                           "test_fraction", "limit")}
    return TextClassificationConfig(**shared)


if __name__ == "__main__":
    main()
