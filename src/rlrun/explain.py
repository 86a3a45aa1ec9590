"""Token attributions for the text classifier: `rlrun-eval RUN text="..." explain=true`
(docs/eval.md).

Integrated gradients (Sundararajan, Taly & Yan, 2017) over the token embeddings, computed by
Captum's `LayerIntegratedGradients`, not by hand:

- **target**: the probability (softmax) of the predicted class;
- **baseline**: the padding token's embedding (id 0) at every position of the text, read with
  the text's own padding mask, so that the path runs from "the same positions, holding
  nothing" to the text (the classifier leaves padding out of attention and pooling, so a
  baseline of padding ids alone would be an empty text, not the start of the path);
- **steps**: `STEPS` (50, Captum's default, Gauss-Legendre points); with MoE layers that cap
  each expert's tokens, the steps run one at a time, so that routing sees one text, as when
  the run labels a single text;
- **convergence delta**: Captum's completeness check, the sum of the attributions minus
  (p(text) - p(baseline)); near 0 when the steps suffice.

A token's attribution is the sum over its embedding's dimensions. Positive values pushed
the predicted class's probability up, negative ones down. Tokens past the run's `max_len`
are not read by the model and get none.

Output: the text with each token's attribution on the terminal (ANSI colour where stdout is
a terminal that takes it and NO_COLOR is unset, signed numbers otherwise), `explain.json`
and `explain.html` in the run dir.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlrun.core.errors import ConfigError

STEPS = 50
JSON_FILE, HTML_FILE = "explain.json", "explain.html"
METHOD = "integrated gradients over the token embeddings (Captum LayerIntegratedGradients)"
BASELINE = "the padding token's embedding at every position of the text"


def require_captum() -> None:
    """A one-line error, before anything loads, when the explain extra is missing."""
    import importlib.util

    try:
        found = importlib.util.find_spec("captum") is not None
    except ValueError:  # sys.modules["captum"] is None: its import is blocked
        found = False
    if not found:
        raise ConfigError("explain=true needs Captum: pip install 'rlrun[explain]'")


def check_request(texts: list[str]) -> None:
    """explain=true explains one text, with Captum installed."""
    if len(texts) != 1:
        raise ConfigError(f"explain=true explains one text at a time; got {len(texts)} text="
                          " options")
    require_captum()


@dataclass
class Explanation:
    text: str
    label: str
    probability: float  # of the predicted class, for the text
    baseline_probability: float  # of the same class, for the baseline
    convergence_delta: float
    tokens: list[dict[str, Any]]  # token, start, end, id, in_vocabulary, attribution
    unread_tokens: int  # past max_len: not read by the model
    steps: int = STEPS
    method: str = METHOD
    baseline: str = BASELINE
    target: str = "the probability of the predicted class"
    probabilities: dict[str, float] = field(default_factory=dict)

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        read = sorted(self.tokens, key=lambda t: -abs(t["attribution"]))
        return [(t["token"], t["attribution"]) for t in read[:n]]


def attribute(clf: Any, ids: Any, target: Any, steps: int = STEPS) -> tuple[Any, Any]:
    """Integrated-gradient attributions (B, T) of token ids (B, T) to the probability of class
    `target` (B,), and Captum's convergence deltas (B,): the function behind `explain` and
    scripts/explain_deletion.py. `clf` is a `SavedClassifier`."""
    import torch
    from captum.attr import LayerIntegratedGradients

    from rlrun.data.text_classification import PAD

    model = clf.model
    model.eval()
    dev = next(model.parameters()).device
    ids, target = ids.to(dev), target.to(dev)

    def prob(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return model(x, real)[0].float().softmax(-1)

    capped = any(getattr(m, "capacity_factor", None) is not None
                 for m in getattr(model.encoder, "moe_layers", []))
    lig = LayerIntegratedGradients(prob, model.encoder.emb)
    attr, delta = lig.attribute(ids, baselines=torch.full_like(ids, PAD), target=target,
                                additional_forward_args=(ids != PAD,), n_steps=steps,
                                internal_batch_size=1 if capped else None,
                                return_convergence_delta=True)
    return attr.sum(-1).detach().float().cpu(), delta.detach().float().cpu()


def explain(clf: Any, text: str, steps: int = STEPS) -> Explanation:
    """Attributions of each token of `text` to the class `clf` (a `SavedClassifier`)
    predicts for it."""
    import torch

    from rlrun.core.errors import ConfigError
    from rlrun.data.text_classification import OOV, PAD, token_spans

    if getattr(clf, "tokenizer", None) is not None or getattr(clf, "pad", PAD) != PAD or \
            getattr(clf, "unknown", OOV) != OOV:
        raise ConfigError("explain=true reads a classifier's own word or character vocabulary;"
                          " this run reads the vocabulary of the LM run it started from"
                          " (algo.init_from), which explain does not map back onto the text")
    spans = token_spans(text, clf.kind)
    read = spans[:clf.max_len]
    ids = torch.full((1, clf.max_len), PAD, dtype=torch.long)
    if read:
        ids[0, :len(read)] = torch.tensor([clf.stoi.get(t, OOV) for t, _, _ in read])
    model = clf.model
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        real = (ids != PAD).to(dev)
        p = model(ids.to(dev), real)[0].float().softmax(-1)[0].cpu()
        p0 = model(torch.zeros_like(ids).to(dev), real)[0].float().softmax(-1)[0].cpu()
    pred = int(p.argmax())
    attr, delta = attribute(clf, ids, torch.tensor([pred]), steps)
    tokens = [{"token": tok, "start": a, "end": b, "id": int(ids[0, i]),
               "in_vocabulary": int(ids[0, i]) != OOV, "attribution": float(attr[0, i])}
              for i, (tok, a, b) in enumerate(read)]
    return Explanation(text=text, label=clf.labels[pred], probability=float(p[pred]),
                       baseline_probability=float(p0[pred]),
                       convergence_delta=float(delta[0]), tokens=tokens,
                       unread_tokens=len(spans) - len(read), steps=steps,
                       probabilities={lab: float(v) for lab, v in zip(clf.labels, p.tolist(),
                                                                       strict=True)})


# ---- output -------------------------------------------------------------------------------
def use_colour(stream: Any = None) -> bool:
    """ANSI colour on a terminal that takes it; never with NO_COLOR set (no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)()) and \
        os.environ.get("TERM", "") not in ("", "dumb")


GREENS = (194, 157, 120, 83, 46)  # xterm-256 backgrounds, light to strong
REDS = (224, 217, 210, 203, 196)


def _level(value: float, scale: float) -> int:
    return min(4, int(5 * abs(value) / scale)) if scale > 0 else 0


def annotate(ex: Explanation, colour: bool) -> str:
    """The text with each read token marked: a coloured background (green for, red against
    the predicted class, stronger for larger) or its signed attribution in brackets."""
    scale = max((abs(t["attribution"]) for t in ex.tokens), default=0.0)
    out, at = [], 0
    for t in ex.tokens:
        out.append(ex.text[at:t["start"]])
        piece, a = ex.text[t["start"]:t["end"]], t["attribution"]
        if colour:
            bg = (GREENS if a >= 0 else REDS)[_level(a, scale)]
            out.append(f"\x1b[30;48;5;{bg}m{piece}\x1b[0m")
        else:
            out.append(f"{piece}[{a:+.3f}]")
        at = t["end"]
    out.append(ex.text[at:])
    return "".join(out)


def summary_lines(ex: Explanation, colour: bool) -> list[str]:
    total = sum(t["attribution"] for t in ex.tokens)
    lines = [
        f"why {ex.label} (p={ex.probability:.3f}): {METHOD}, {ex.steps} steps, baseline:"
        f" {BASELINE} (p={ex.baseline_probability:.3f}); attributions sum to {total:+.4f},"
        f" convergence delta {ex.convergence_delta:+.4f}",
        annotate(ex, colour),
        "top: " + ", ".join(f"{tok} {a:+.3f}" for tok, a in ex.top()),
    ]
    if colour:
        lines.append("green: for " + ex.label + ", red: against (stronger = larger)")
    if ex.unread_tokens:
        lines.append(f"({ex.unread_tokens} tokens past the run's max_len={len(ex.tokens)}"
                     " are not read by the model)")
    return lines


def to_html(ex: Explanation) -> str:
    """A self-contained page: the text with coloured tokens (hover: the value) and the
    tokens ranked by attribution."""
    scale = max((abs(t["attribution"]) for t in ex.tokens), default=0.0) or 1.0
    body, at = [], 0
    for t in ex.tokens:
        body.append(html.escape(ex.text[at:t["start"]]))
        a = t["attribution"]
        rgb = "0,150,60" if a >= 0 else "210,40,40"
        body.append(f'<span class="tok" style="background:rgba({rgb},{abs(a) / scale:.3f})"'
                    f' title="{html.escape(t["token"])}: {a:+.4f}">'
                    f"{html.escape(ex.text[t['start']:t['end']])}</span>")
        at = t["end"]
    body.append(html.escape(ex.text[at:]))
    rows = "".join(
        f"<tr><td>{html.escape(t['token'])}</td><td>{t['attribution']:+.4f}</td>"
        f"<td>{'' if t['in_vocabulary'] else 'unknown'}</td></tr>"
        for t in sorted(ex.tokens, key=lambda t: -t["attribution"]))
    total = sum(t["attribution"] for t in ex.tokens)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rlrun explain: {html.escape(ex.label)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.6 }}
.text {{ font-size: 1.2em; white-space: pre-wrap; border: 1px solid #ccc; padding: 1em }}
.tok {{ border-radius: 3px; padding: 0 1px }}
table {{ border-collapse: collapse }} td, th {{ padding: 2px 10px; text-align: left }}
.meta {{ color: #555 }}
</style></head><body>
<h1>{html.escape(ex.label)} <small>p = {ex.probability:.3f}</small></h1>
<p class="meta">{html.escape(METHOD)}; target: {html.escape(ex.target)}; baseline:
{html.escape(BASELINE)} (p = {ex.baseline_probability:.3f}); {ex.steps} steps; attributions
sum to {total:+.4f}; convergence delta {ex.convergence_delta:+.4f}.
Green tokens pushed the probability of {html.escape(ex.label)} up, red ones down.</p>
<div class="text">{''.join(body)}</div>
<h2>Tokens by attribution</h2>
<table><tr><th>token</th><th>attribution</th><th></th></tr>{rows}</table>
</body></html>
"""


def explain_and_write(clf: Any, text: str, run_dir: Path,
                      echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Explain `text`, print it, write explain.json and explain.html into the run dir;
    returns the short record rlrun-eval keeps in eval.json."""
    from rlrun.core.checkpoint import atomic_write_bytes, atomic_write_json

    if not hasattr(clf, "stoi") or not hasattr(clf, "model"):
        raise ConfigError("explain=true needs rlrun's text classifier (a plugin's"
                          " load_text_classifier hook returns a plain function)")
    ex = explain(clf, text)
    for line in summary_lines(ex, use_colour()):
        echo(line)
    rec = asdict(ex)
    atomic_write_json(run_dir / JSON_FILE, rec)
    atomic_write_bytes(run_dir / HTML_FILE, to_html(ex).encode())
    echo(f"wrote {run_dir / JSON_FILE} and {HTML_FILE}")
    return {"file": JSON_FILE, "html": HTML_FILE, "steps": ex.steps,
            "convergence_delta": ex.convergence_delta}

