"""Language models with dense and MoE FFNs: router math on hand-built logits, capacity and
dropping, gradients, the one-expert equivalence, causality, the FLOP counter, learning,
budgets, exact resume and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rlrun.core.errors import ConfigError, DataError, PairingError
from rlrun.nets.moe import MoE, aux_loss, capacity, dispatch, route, z_loss
from rlrun.nets.transformer import Transformer

from .conftest import interrupt_and_resume, read_results, rlrun_cli, run_train

FAST = ["threads=1", "checkpoint_every_s=0", "algo=lm"]
TINY = [*FAST, "network.d_model=32", "network.n_layers=1", "network.n_heads=2",
        "network.block_size=16", "network.d_ff=64", "env.max_chars=20000",
        "algo.batch_size=8", "algo.eval_batches=2", "algo.sample_chars=10"]


# ---- router math -------------------------------------------------------------------------------
def test_mixtral_routing_picks_top_k_and_renormalises_over_them():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.5, -1.0, 0.0, 4.0]])
    idx, w = route(logits, "mixtral", 2)
    assert idx.tolist() == [[1, 2], [3, 0]]
    e = math.e
    assert w[0].tolist() == pytest.approx([e / (e + 1), 1 / (e + 1)])
    assert w[1].tolist() == pytest.approx([1 / (1 + math.exp(-3.5)), 1 / (1 + math.exp(3.5))])
    assert w.sum(-1).tolist() == pytest.approx([1.0, 1.0])


def test_switch_routing_keeps_the_full_softmax_probability():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    idx, g = route(logits, "switch", 1)
    z = sum(math.exp(v) for v in (1.0, 3.0, 2.0, 0.0))
    assert idx.tolist() == [[1]]
    assert float(g) == pytest.approx(math.exp(3.0) / z)


def test_aux_loss_is_n_sum_f_p_and_z_loss_is_mean_squared_logsumexp():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    idx = torch.tensor([[0], [1], [0], [2]])
    p = logits.softmax(-1).mean(0)
    f = torch.tensor([2 / 4, 1 / 4, 1 / 4])
    assert float(aux_loss(logits, idx)) == pytest.approx(3 * float((f * p).sum()))
    # perfectly balanced with uniform probabilities -> 1; collapsed onto one expert -> N
    uniform = torch.zeros(4, 4)
    assert float(aux_loss(uniform, torch.tensor([[0], [1], [2], [3]]))) == pytest.approx(1.0)
    peaked = torch.tensor([[50.0, 0, 0, 0]] * 4)
    assert float(aux_loss(peaked, torch.zeros(4, 1, dtype=torch.long))) == pytest.approx(4.0)
    # top-2: f counts both choices (each token contributes 1/(T k) per choice)
    two = torch.tensor([[0, 1], [0, 2]])
    f2 = torch.tensor([2 / 4, 1 / 4, 1 / 4])
    p2 = logits[:2].softmax(-1).mean(0)
    assert float(aux_loss(logits[:2], two)) == pytest.approx(3 * float((f2 * p2).sum()))
    lse = [math.log(sum(math.exp(v) for v in row)) for row in logits.tolist()]
    assert float(z_loss(logits)) == pytest.approx(sum(v * v for v in lse) / 4)


def _forced_moe(router: str, k: int, cf: float | None, n: int = 2) -> MoE:
    """A MoE whose router sends every token [1, 0] to expert 0, then expert 1 (logits 10, 5)."""
    torch.manual_seed(0)
    m = MoE(2, 4, n, router, k, cf)
    with torch.no_grad():
        m.router.weight.zero_()
        m.router.weight[0, 0], m.router.weight[1, 0] = 10.0, 5.0
    return m


def test_capacity_drops_overflow_tokens_in_order_and_they_pass_through_as_zero():
    m = _forced_moe("switch", 1, 1.0)
    x = torch.tensor([[1.0, 0.0]] * 4) * torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    assert capacity(4, 2, 1, 1.0) == 2
    y = m(x)
    assert (y[2:] == 0).all() and (y[:2].abs() > 0).all()  # tokens 2, 3 dropped: residual only
    assert float(m.stats["dropped_fraction"]) == pytest.approx(0.5)
    assert float(m.stats["top1_share"]) == 1.0 and float(m.stats["entropy"]) == 0.0
    # the kept ones equal expert 0 applied by hand, times the Switch gate p_0
    g, u = (x[:2] @ m.w13[0]).chunk(2, -1)
    ref = (torch.nn.functional.silu(g) * u) @ m.w2[0] * torch.sigmoid(5.0 * x[:2, :1])
    assert torch.allclose(y[:2], ref, atol=1e-6)
    assert m.flops == 2 * 4 * 2 * 2 + 2 * 2 * 3 * 2 * 4  # router + 2 kept tokens


def test_top2_capacity_keeps_earlier_positions():
    # 4 tokens, top-2 over 2 experts, capacity ceil(1.0 * 4 * 2 / 2) = 4 slots per expert:
    # expert 0 gets all 4 first choices, expert 1 all 4 second choices: nothing dropped.
    m = _forced_moe("mixtral", 2, 1.0)
    m(torch.tensor([[1.0, 0.0]] * 4))
    assert float(m.stats["dropped_fraction"]) == 0.0
    # 3 experts, cap ceil(0.75 * 4 * 2 / 3) = 2: experts 0/1 keep the first 2 tokens each
    m3 = _forced_moe("mixtral", 2, 0.75, n=3)
    y = m3(torch.tensor([[1.0, 0.0]] * 4))
    assert float(m3.stats["dropped_fraction"]) == pytest.approx(0.5)
    assert (y[2:] == 0).all() and (y[:2].abs() > 0).all()


def _dispatch_by_key(idx: torch.Tensor, n: int, cap: int, seq_len: int | None):
    """The plain form of `dispatch`: one argsort of the key (expert, position, sequence,
    choice), the definition of its order."""
    t, k = idx.shape
    tok = torch.arange(t)
    rank = tok if seq_len is None or seq_len >= t else (
        (tok % seq_len) * (t // seq_len) + tok // seq_len)
    flat = idx.t().reshape(-1)
    key = (flat * t + rank.repeat(k)) * k + torch.arange(k).repeat_interleave(t)
    counts = torch.bincount(flat, minlength=n)
    return torch.argsort(key), counts, counts.clamp(max=cap)


@pytest.mark.parametrize("t, k, n, seq_len", [(48, 2, 8, 8), (48, 1, 4, 16), (12, 3, 4, None),
                                              (7, 2, 3, None), (16, 2, 8, 32)])
def test_dispatch_sorts_like_the_composite_key(t, k, n, seq_len):
    """`dispatch` (a stable sort by expert of the assignments laid out in priority order)
    gives the permutation of an argsort of the whole priority key, with and without
    capacity."""
    g = torch.Generator().manual_seed(t * k + n)
    for _ in range(5):
        idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(t)])
        for cap in (1, 3, t * k):
            for a, b in zip(dispatch(idx, n, cap, seq_len),
                            _dispatch_by_key(idx, n, cap, seq_len), strict=True):
                assert torch.equal(a, b)


def test_moe_stats_derived_on_read_match_the_counts():
    """`m.stats` computes load, entropy, top-1 share and the dropped fraction when read:
    the values of their definitions, keys in the order they were always logged."""
    m = _forced_moe("mixtral", 2, 0.75, n=3)
    m(torch.tensor([[1.0, 0.0]] * 4))
    st = m.stats
    assert list(st) == ["entropy", "top1_share", "dropped_fraction", "load", "counts",
                        "aux_loss", "z_loss"]
    assert st["counts"].tolist() == [4, 4, 0]
    assert st["load"].tolist() == [0.5, 0.5, 0.0]
    assert float(st["entropy"]) == pytest.approx(math.log(2))
    assert float(st["top1_share"]) == 0.5 and float(st["dropped_fraction"]) == 0.5
    assert dict(st).keys() == set(st)


def test_gradients_reach_the_router_and_every_selected_expert():
    torch.manual_seed(1)
    m = MoE(8, 16, 6, "mixtral", 2)
    x = torch.randn(40, 8, requires_grad=True)
    y = m(x)
    (y.pow(2).sum() + m.stats["aux_loss"] + m.stats["z_loss"]).backward()
    chosen = m.stats["counts"] > 0
    assert chosen.sum() >= 2
    assert m.router.weight.grad.abs().sum() > 0
    for e in range(6):
        has = m.w13.grad[e].abs().sum() > 0 and m.w2.grad[e].abs().sum() > 0
        assert bool(has) == bool(chosen[e]), e
    assert x.grad.abs().sum() > 0


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="this torch has no _grouped_mm")
@pytest.mark.parametrize("router, k, cf", [("mixtral", 2, None), ("switch", 1, 1.0),
                                           ("mixtral", 2, 0.5)])
def test_grouped_experts_give_the_numbers_of_the_expert_loop(monkeypatch, router, k, cf):
    """moe.EXPERTS (one grouped matmul over the experts' slices) against the plain loop over
    experts: the same outputs, losses and gradients, bit for bit, with an expert that no
    token reaches (router forced away from it) and with capacity dropping tokens."""
    from rlrun.nets import moe as moe_mod

    def run(experts):
        monkeypatch.setattr(moe_mod, "EXPERTS", experts)
        torch.manual_seed(3)
        m = MoE(16, 24, 6, router, k, cf)
        with torch.no_grad():  # expert 5's logit: -100 x[..., 0] < -10, never chosen
            m.router.weight[5] = 0.0
            m.router.weight[5, 0] = 100.0
        x = torch.randn(4, 10, 16)
        x[..., 0] = -x[..., 0].abs() - 0.1
        x.requires_grad_(True)
        y = m(x)
        (y.pow(2).sum() + m.stats["aux_loss"] + m.stats["z_loss"]).backward()
        return [y, m.stats["counts"], m.stats["dropped_fraction"], x.grad, m.w13.grad,
                m.w2.grad, m.router.weight.grad]

    loop, grouped = run(moe_mod.experts_loop), run(moe_mod.experts_grouped)
    assert int(loop[1][5]) == 0  # an expert without tokens
    assert (float(loop[2]) > 0) == (cf is not None)  # capacity dropped tokens
    for a, b in zip(loop, grouped, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="this torch has no _grouped_mm")
def test_grouped_experts_take_an_expanded_gradient():
    """`.sum().backward()` straight on the experts' output hands their backward an expanded
    (stride-0) gradient, which `_grouped_mm` refuses ("Invalid strides") unless made
    contiguous: the gradients are then the loop's."""
    from rlrun.nets import moe as moe_mod

    torch.manual_seed(0)
    xs, w13, w2 = torch.randn(40, 16), torch.randn(4, 16, 64), torch.randn(4, 32, 16)
    kept = torch.tensor([10, 0, 20, 10])
    grads = []
    for experts in (moe_mod.experts_loop, moe_mod.experts_grouped):
        leaves = [t.clone().requires_grad_(True) for t in (xs, w13, w2)]
        experts(*leaves, kept, None).sum().backward()
        grads.append([t.grad for t in leaves])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_the_grouped_experts_are_the_ones_used():
    from rlrun.nets import moe as moe_mod

    want = moe_mod.experts_grouped if hasattr(torch, "_grouped_mm") else moe_mod.experts_loop
    assert moe_mod.EXPERTS is want


@pytest.mark.parametrize("ffn", ["mixtral", "switch"])
def test_one_expert_top1_equals_the_dense_ffn(ffn):
    kw = dict(vocab_size=20, d_model=16, n_layers=2, n_heads=2, block_size=12, d_ff=24)
    torch.manual_seed(0)
    dense = Transformer(ffn="dense", **kw)
    moe = Transformer(ffn=ffn, n_experts=1, top_k=1, d_expert=24, capacity_factor=1.0, **kw)
    state = dense.state_dict()
    for i in range(2):
        p = f"blocks.{i}.ffn."
        state[p + "w13"] = state.pop(p + "w13.weight").t()[None]
        state[p + "w2"] = state.pop(p + "w2.weight").t()[None]
        state[p + "router.weight"] = moe.state_dict()[p + "router.weight"]
    moe.load_state_dict(state)
    x = torch.randint(0, 20, (3, 12))
    assert torch.allclose(moe(x)[0], dense(x)[0], atol=1e-5)


@pytest.mark.parametrize("ffn, cf", [("dense", None), ("mixtral", None), ("mixtral", 0.5),
                                     ("switch", 0.5)])
def test_no_information_flows_from_future_characters(ffn, cf):
    # with a capacity, dropping must not let a later character (of any sequence in the
    # batch) evict an earlier one
    torch.manual_seed(0)
    m = Transformer(30, d_model=16, n_layers=2, n_heads=2, block_size=16, ffn=ffn, d_ff=32,
                    n_experts=4, capacity_factor=cf).eval()
    x = torch.randint(0, 30, (2, 16))
    t = 9
    x2 = x.clone()
    x2[:, t:] = torch.randint(0, 30, (2, 16 - t))
    (a, aux), (b, _) = m(x), m(x2)
    if cf:
        assert float(aux.moe[0]["dropped_fraction"]) > 0.1
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)
    assert not torch.allclose(a[:, t:], b[:, t:], atol=1e-3)  # the change is seen after t


def matmul_weights_per_token(m: Transformer) -> int:
    """N of the "2N" rule (Kaplan et al. 2020, table 1; Hoffmann et al. 2022, appendix F):
    the weights one token is multiplied by, counted from the parameter tensors themselves:
    every matrix but the embedding table; of a MoE layer, its router and top_k experts."""
    n = 0
    for name, p in m.named_parameters():
        if name.startswith("emb") or p.dim() < 2:
            continue
        if name.endswith((".w13", ".w2")):  # expert stacks (n_experts, ., .): k are used
            n += p[0].numel() * m.blocks[0].ffn.k
        else:
            n += p.numel()
    return n


@pytest.mark.parametrize("ffn, kv", [("dense", None), ("dense", 1), ("mixtral", None),
                                     ("switch", None)])
def test_flop_count_is_the_2n_rule_plus_attention_and_torch_counts_3x_its_matmuls(ffn, kv):
    """The model's forward count against an independent one: 2 FLOPs per multiply-add of
    every weight a token meets (2N), plus the attention logits and their weighted sum, 2 t d
    FLOPs each per token and layer (Hoffmann et al., appendix F; t x t, as SDPA computes
    them). Training's 3x: torch's own FLOP counter sees every matmul of forward and backward
    (not the CPU SDPA kernel). No capacity limit, so every routed token is computed."""
    torch.manual_seed(0)
    b, t, d, layers = 3, 16, 32, 2
    m = Transformer(50, d_model=d, n_layers=layers, n_heads=2, block_size=t, ffn=ffn, d_ff=64,
                    n_kv_heads=kv, n_experts=4, capacity_factor=0.0)
    x = torch.randint(0, 50, (b, t))
    with FlopCounterMode(display=False) as fc:
        logits, aux = m(x)
        logits.sum().backward()
    n = matmul_weights_per_token(m)
    attention = layers * 2 * (2 * t * d)
    assert aux.flops == b * t * (2 * n + attention)
    assert fc.get_total_flops() == 3 * b * t * 2 * n
    if ffn == "dense" and kv is None:
        # by hand: per block q, k, v 32x96 + output 32x32 + SwiGLU 32x128 + 64x32 = 10240
        # weights, two blocks and the 32x50 head: N = 22080; attention 2 x 2 x 16 x 32 per
        # layer; 48 tokens x (2 N + 4096) = 2,316,288 FLOPs
        assert n == 22_080 and aux.flops == 2_316_288


# ---- runs ---------------------------------------------------------------------------------------
def test_mixtral_learns_below_the_unigram_entropy_and_logs_every_tag(tmp_path):
    res = run_train(tmp_path, [*FAST, "network.ffn=mixtral", "network.d_model=64",
                               "network.block_size=32", "network.d_ff=192",
                               "algo.total_steps=150", "algo.batch_size=16",
                               "algo.eval_every=75", "algo.log_every=25",
                               "algo.sample_chars=20"])
    m = res["metrics"]
    unigram = m["data/unigram_entropy"]["last"]
    assert 3.0 < unigram < 3.5  # English docs: ~3.25 nats/char with no context
    assert m["eval/val_loss"]["last"] < unigram - 0.7, (m["eval/val_loss"], unigram)
    assert m["eval/val_ppl"]["last"] == pytest.approx(math.exp(m["eval/val_loss"]["last"]))
    for tag in ("losses/train", "charts/tokens_per_s", "charts/flops", "moe/entropy",
                "moe/top1_share", "moe/dropped_fraction", "moe/aux_loss", "moe/z_loss",
                "moe/entropy/layer1", "moe/aux_loss/layer0"):
        assert tag in m, tag
    assert m["eval/val_loss"]["count"] == 2 and res["steps"] == 150
    assert m["moe/dropped_fraction"]["last"] == 0.0  # Mixtral: no capacity limit
    assert 1.0 <= m["moe/aux_loss"]["last"] < 1.5  # load stays near balance
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0,
                                                                "histograms": 0}).Reload()
    assert "moe/expert_load/layer0" in ea.Tags()["histograms"]
    assert [e.step for e in ea.Tensors("eval/sample/text_summary")] == [75, 150]


def test_flop_budget_ends_the_run_first(tmp_path):
    res = run_train(tmp_path, [*TINY, "network.ffn=switch", "algo.total_steps=1000",
                               "algo.flop_budget=3e8", "algo.eval_every=0"])
    flops = res["metrics"]["charts/flops"]["last"]
    per_step = flops / res["steps"]
    assert 3e8 <= flops < 3e8 + 1.5 * per_step
    assert 5 < res["steps"] < 1000 and res["metrics"]["eval/val_loss"]["count"] == 1


def test_resume_continues_exactly(tmp_path, monkeypatch):
    # MQA and the attention statistics and KV-cache samples of each evaluation included
    args = [*TINY, "deterministic=true", "network.ffn=switch", "network.jitter=0.05",
            "network.n_kv_heads=1", "algo.total_steps=30", "algo.eval_every=10",
            "algo.log_every=5"]
    a = run_train(tmp_path, args, "a")
    b = interrupt_and_resume(tmp_path, monkeypatch, args, 13)
    assert read_results(tmp_path / "b")["status"] == "completed"
    for r in (a, b):
        r["metrics"].pop("charts/tokens_per_s")
    assert b["metrics"] == a["metrics"]


def test_raising_the_budget_on_resume_warns_that_the_cosine_decay_moves(tmp_path, caplog):
    """The schema says which schedule follows the budget; evaluation keys may change too,
    what the model learns may not."""
    from rlrun.train import train

    from .conftest import compose_cfg

    run_train(tmp_path, [*TINY, "algo.total_steps=3", "algo.eval_every=0"])
    with pytest.raises(ConfigError, match="only these keys may change"):
        train(compose_cfg([f"resume={tmp_path / 'run'}"]), overrides=["algo.lr=1e-3"])
    res = train(compose_cfg([f"resume={tmp_path / 'run'}"]),
                overrides=["algo.total_steps=5", "algo.eval_batches=1"])
    assert res["steps"] == 5
    assert "the cosine learning-rate decay now ends at the new total_steps" in caplog.text


def test_text_file_env_and_its_errors(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("the cat sat on the mat. " * 400, encoding="utf-8")
    res = run_train(tmp_path, [*TINY, "env=text_file", f"env.path={book}",
                               "algo.total_steps=5"])
    assert res["env"] == "text_file" and res["status"] == "completed"
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    for path, match in ((tmp_path / "nope.txt", "no such file"),
                        (tmp_path / "empty.txt", "is empty"),
                        (tmp_path / "latin1.txt", "is not UTF-8 text")):
        with pytest.raises(DataError, match=match):
            run_train(tmp_path, [*TINY, "env=text_file", f"env.path={path}"], path.stem)
        assert not (tmp_path / path.stem).exists()  # found by preflight: no run dir
    with pytest.raises(DataError, match="needs a file"):
        run_train(tmp_path, [*TINY, "env=text_file"], "nopath")
    assert not (tmp_path / "nopath").exists()


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="switch routes top-1"):
        run_train(tmp_path, [*TINY, "network.ffn=switch", "network.top_k=2"], "a")
    with pytest.raises(ConfigError, match="network.ffn='moe'"):
        run_train(tmp_path, [*TINY, "network.ffn=moe"], "b")
    with pytest.raises(PairingError, match="try algo=lm"):
        run_train(tmp_path, ["algo=ucb", "env=stdlib_docs"], "c")
    with pytest.raises(PairingError, match="needs a text corpus"):
        run_train(tmp_path, [*FAST, "env=CartPole-v1"], "d")
    out = rlrun_cli(["algo=lm", "env=text_file", f"env.path={tmp_path}/missing.txt"],
                    cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"rlrun: error: env.path={tmp_path}/missing.txt: no such file; give a UTF-8 text file"]


def test_moe_report_tabulates_a_sweep_at_equal_flops(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "moe_report.py"
    spec = importlib.util.spec_from_file_location("moe_report", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sweep = tmp_path / "sweep"
    for i, ffn in enumerate(("dense", "mixtral")):
        run_train(sweep, [*TINY, f"network.ffn={ffn}", "algo.total_steps=12",
                          "algo.eval_every=4"], f"{i}_{ffn}")
    assert mod.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert (sweep / "moe_table.md").read_text() == out
    rows = [line for line in out.splitlines() if line.startswith("| 1_mixtral")]
    assert len(rows) == 2 and "mixtral 8x top-2" in rows[0]
    # the equal-FLOPs table: ppl at 25..100% of the budget, decreasing as training goes on
    ppl = [float(c) for c in rows[1].strip("| ").split(" | ")[3:] if c != "-"]
    assert len(ppl) >= 3 and ppl[-1] < ppl[0]
