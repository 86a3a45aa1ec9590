"""Tables and figures of LM attention sweeps: MHA vs GQA vs MQA, RoPE vs sinusoidal vs none.

    rlrun -m algo=lm threads=1 network.n_heads=8 network.n_kv_heads=null,2,1 seed=0,1,2 \
        algo.total_steps=150 algo.eval_every=0 hydra.sweep.dir=multirun/lm_kv
    rlrun -m algo=lm threads=1 network.n_heads=8 network.pos_encoding=sinusoidal,none \
        seed=0,1,2 algo.total_steps=150 algo.eval_every=0 hydra.sweep.dir=multirun/lm_pos
    python scripts/lm_attention_report.py multirun/lm_kv multirun/lm_pos --out docs/figures

1. A markdown table: one row per attention/position configuration, validation perplexity
   mean +- sd over the seeds (equal steps), KV-cache bytes per token, and mean attention
   entropy per layer (`attention/entropy_layer<i>` of the final evaluation).
2. `lm_qk_distance.png`: E[|q . k|] against relative distance, as the post draws it: (left)
   for random content vectors x ~ N(0, I) at two positions (q = k = x plus the position:
   RoPE rotates, sinusoidal adds Vaswani's table), (right) the trained models' own queries
   and keys on validation windows (mean over layers, heads, windows; first seed of each).
3. `lm_attention_maps_layer<i>.png`: the attention-map grids a run logs to TensorBoard
   (first sequence of its fixed validation batch), of the first seed's RoPE MHA model.

Needs the plot extra (matplotlib): pip install 'rlrun[plot]'. Without it the script says so in
one line and exits with 2, before reading any run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from rlrun.core.checkpoint import load_checkpoint
from rlrun.data.text import CharCorpus, TextConfig, eval_batches
from rlrun.nets import build_network
from rlrun.nets.attention_stats import attention_probs, map_grid
from rlrun.nets.transformer import rope_tables, sinusoidal_table
from rlrun.report.plots import PLOT_EXTRA, require_matplotlib


def jobs(dirs: list[Path]) -> list[dict]:
    out = []
    for d in dirs:
        found = [Path(d) / "results.json"] if (Path(d) / "results.json").is_file() else []
        for res in found or sorted(Path(d).glob("*/results.json")):
            cfg = OmegaConf.load(res.parent / ".hydra" / "config.yaml")
            r = json.loads(res.read_text())
            if r.get("status") == "completed":
                out.append({"dir": res.parent, "cfg": cfg, "res": r})
    return out


def label(cfg) -> str:
    n = cfg.network
    kv = n.n_kv_heads or n.n_heads
    kind = "MHA" if kv == n.n_heads else "MQA" if kv == 1 else "GQA"
    return f"{kind} ({n.n_heads} q / {kv} kv heads), {n.pos_encoding}"


def load_model(job: dict):
    """The trained model of a run dir and its corpus (validation windows)."""
    cfg = job["cfg"]
    env = TextConfig(**{f.name: cfg.env[f.name] for f in fields(TextConfig)})
    corpus = CharCorpus(env, int(cfg.network.block_size))
    model = build_network(cfg.network, vocab_size=corpus.vocab_size)
    model.load_state_dict(load_checkpoint(job["dir"] / "checkpoints" / "last.pt")["loop"]["model"])
    return model.eval(), corpus


def table(all_jobs: list[dict]) -> str:
    groups: dict[str, list[dict]] = {}
    for j in all_jobs:
        groups.setdefault(label(j["cfg"]), []).append(j)
    layers = max(int(j["cfg"].network.n_layers) for j in all_jobs)
    head = ["configuration", "seeds", "steps", "val ppl (mean +- sd)", "KV bytes/token (fp32)"]
    head += [f"entropy layer {i} (nats)" for i in range(layers)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, js in groups.items():
        ppl = [j["res"]["metrics"]["eval/val_ppl"]["last"] for j in js]
        n = js[0]["cfg"].network
        kv_bytes = 2 * n.n_layers * (n.n_kv_heads or n.n_heads) * (n.d_model // n.n_heads) * 4
        sd = statistics.stdev(ppl) if len(ppl) > 1 else 0.0
        cells = [name, str(len(js)), str(js[0]["res"]["steps"]),
                 f"{statistics.mean(ppl):.3f} +- {sd:.3f}", f"{kv_bytes:,}"]
        for i in range(layers):
            ent = [j["res"]["metrics"].get(f"attention/entropy_layer{i}", {}).get("last")
                   for j in js]
            ent = [e for e in ent if e is not None]
            cells.append(f"{statistics.mean(ent):.2f}" if ent else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def analytic_qk(head_dim: int, max_dist: int, draws: int = 2000) -> dict[str, np.ndarray]:
    """E_x |q_m . k_n| / sqrt(Dh) against n - m, same content x ~ N(0, I) at both positions."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(draws, head_dim, generator=g)
    cos, sin = rope_tables(head_dim, max_dist + 1)
    x1, x2 = x[:, 0::2], x[:, 1::2]
    # RoPE: q_m . k_n = sum_i |x_i|^2 cos((n - m) theta_i) over the rotated pairs
    rope = ((x1 ** 2 + x2 ** 2)[:, None, :] * cos[None]).sum(-1).abs().mean(0)
    pe = sinusoidal_table(max_dist + 1, head_dim, scale=2 ** -0.5)  # Vaswani's unscaled table
    m = 0
    sinus = ((x[:, None] + pe[m]) * (x[:, None] + pe[None])).sum(-1).abs().mean(0)
    s = math.sqrt(head_dim)
    return {"rope": (rope / s).numpy(), "sinusoidal": (sinus / s).numpy()}


@torch.no_grad()
def trained_qk(model, idx: torch.Tensor) -> np.ndarray:
    """E |q_i . k_j| / sqrt(Dh) over layers, heads and windows, against i - j."""
    x, cos, sin = model.embed(idx)
    t = idx.shape[1]
    sums, counts = torch.zeros(t), torch.zeros(t)
    i = torch.arange(t)
    dist = (i[:, None] - i[None, :]).clamp_min(-1)
    for blk in model.blocks:
        q, k, _ = blk.attn.project(blk.n1(x), cos, sin)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
        s = (q @ k.transpose(-2, -1)).abs().mean((0, 1)) / math.sqrt(q.shape[-1])
        for d in range(t):
            sel = dist == d
            sums[d] += s[sel].sum()
            counts[d] += sel.sum()
        x = blk(x, cos, sin)
    return (sums / counts).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog=f"Needs the plot extra (matplotlib): {PLOT_EXTRA}")
    ap.add_argument("dirs", type=Path, nargs="+", help="sweep directories (multirun/...) or"
                    " run directories")
    ap.add_argument("--out", type=Path, default=None, help="where the PNGs go (default: the"
                    " first sweep dir)")
    a = ap.parse_args(argv)
    require_matplotlib("lm_attention_report.py")
    torch.set_num_threads(1)
    out = a.out or a.dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    all_jobs = jobs(a.dirs)
    if not all_jobs:
        print(f"no results.json under {', '.join(map(str, a.dirs))}")
        return 1
    print(table(all_jobs))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = {}
    for j in sorted(all_jobs, key=lambda j: j["cfg"].seed):
        n = j["cfg"].network
        if (n.n_kv_heads or n.n_heads) == n.n_heads:
            first.setdefault(n.pos_encoding, j)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    hd = 64
    for name, curve in analytic_qk(hd, 256).items():
        ax1.plot(curve, label=name)
    ax1.set(title=f"random content x ~ N(0, I), head dim {hd}", xlabel="relative distance",
            ylabel="E[|q . k|] / sqrt(d)")
    ax1.legend()
    for name, job in first.items():
        model, corpus = load_model(job)
        idx = eval_batches(corpus.val, 32, model.block_size, 1)[0][0]
        ax2.plot(trained_qk(model, idx), label=f"{name} (trained)")
        if name == "rope":
            maps, diff = attention_probs(model, idx[:8])
            for i, p in enumerate(maps):
                img = map_grid(p[0])[0]
                plt.imsave(out / f"lm_attention_maps_layer{i}.png", img, cmap="gray", vmin=0,
                           vmax=1)
            print(f"\nattention maps of {job['dir']} (explicit vs SDPA max |diff| {diff:.1e})")
    ax2.set(title="trained models, validation windows", xlabel="relative distance (i - j)",
            ylabel="E[|q . k|] / sqrt(d)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out / "lm_qk_distance.png", dpi=110)
    print(f"figures in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
