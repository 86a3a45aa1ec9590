"""The LM's attention: GQA/MQA against MHA, KV-cache decoding against recomputation, the cache's
size against its formula, explicit attention against SDPA, head statistics against a hand
computation, position encodings, and the attention logs of a run."""

from __future__ import annotations

import math

import pytest
import torch

from rlrun.core.errors import ConfigError
from rlrun.nets import transformer as tr
from rlrun.nets.attention_stats import (
    attention_probs,
    explicit_attention,
    head_stats,
    head_type,
    uniform_entropy,
)
from rlrun.nets.decode import KVCache, cache_bytes, generate
from rlrun.nets.transformer import Transformer

from .conftest import run_train

TINY = ["threads=1", "checkpoint_every_s=0", "algo=lm", "network.d_model=32",
        "network.n_layers=2", "network.n_heads=4", "network.block_size=16", "network.d_ff=64",
        "env.max_chars=20000", "algo.batch_size=8", "algo.eval_batches=2",
        "algo.sample_chars=10"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Direct model calls on one thread: on a shared 2-core machine torch's spinning OpenMP
    threads made these tests 10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(seed: int = 0, scale: float = 0.3, **kw) -> Transformer:
    """A small model with larger-than-init weights, so attention is far from uniform and
    greedy decoding is not one repeated character."""
    args = dict(vocab_size=30, d_model=32, n_layers=2, n_heads=4, block_size=16, d_ff=64)
    torch.manual_seed(seed)
    m = Transformer(**{**args, **kw})
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0, scale)
    return m.eval()


# ---- GQA / MQA ---------------------------------------------------------------------------------
def test_gqa_with_as_many_kv_heads_as_heads_is_mha():
    mha = _model()
    gqa = Transformer(30, d_model=32, n_layers=2, n_heads=4, block_size=16, d_ff=64,
                      n_kv_heads=4).eval()
    gqa.load_state_dict(mha.state_dict())  # same parameter names and shapes
    x = torch.randint(0, 30, (3, 16))
    assert torch.equal(gqa(x)[0], mha(x)[0])


@pytest.mark.parametrize("mode", tr.GQA_MODES)
@pytest.mark.parametrize("kv", [2, 1])
def test_gqa_equals_mha_with_each_kv_head_copied_to_its_query_group(monkeypatch, mode, kv):
    # query head j reads K/V head j // (H / KV): an MHA whose K/V weights repeat each KV
    # head's rows for its group computes the same function
    monkeypatch.setattr(tr, "GQA_MODE", mode)
    gqa = _model(n_kv_heads=kv)
    mha = _model()
    state, d, hd = gqa.state_dict(), 32, 8
    for i in range(2):
        w = state[f"blocks.{i}.attn.qkv.weight"]
        q, k, v = w.split([d, kv * hd, kv * hd])
        expand = [t.view(kv, hd, d).repeat_interleave(4 // kv, 0).reshape(d, d) for t in (k, v)]
        state[f"blocks.{i}.attn.qkv.weight"] = torch.cat([q, *expand])
    mha.load_state_dict(state)
    x = torch.randint(0, 30, (2, 16))
    assert torch.allclose(gqa(x)[0], mha(x)[0], atol=1e-5)
    assert gqa.blocks[0].attn.qkv.weight.shape == (d + 2 * kv * hd, d)


def test_bad_kv_heads_and_pos_encoding_are_one_line_errors(tmp_path):
    """Refused by the network's schema before the run (its dir is never made)."""
    for i, (override, match) in enumerate((
            ("network.n_kv_heads=3", r"^network.n_kv_heads=3 must divide n_heads=4 \(null"),
            ("network.n_kv_heads=0", r"^network.n_kv_heads=0 must be >= 1$"),
            ("network.pos_encoding=alibi", r"^network.pos_encoding='alibi' must be one of rope,"
                                           r" sinusoidal, none$"))):
        with pytest.raises(ConfigError, match=match):
            run_train(tmp_path, [*TINY, override], str(i))
        assert not (tmp_path / str(i)).exists()


# ---- KV cache ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pos", ["rope", "sinusoidal", "none"])
@pytest.mark.parametrize("kv", [None, 2, 1])
def test_greedy_decoding_with_the_cache_gives_the_tokens_without_it(kv, pos):
    m = _model(n_kv_heads=kv, pos_encoding=pos)
    # 3 + 40 characters > block_size 16: the context is cut (and the cache refilled) twice
    with_cache = generate(m, [1, 2, 3], 40, greedy=True, cache=True)
    assert with_cache == generate(m, [1, 2, 3], 40, greedy=True, cache=False)
    assert len(set(with_cache)) > 3  # not a degenerate repeat
    # and a prompt in pieces through the cache gives the full forward's logits
    x = torch.randint(0, 30, (2, 16))
    c = KVCache.for_model(m, batch=2)
    pieces = torch.cat([m(x[:, :5], c)[0], m(x[:, 5:6], c)[0], m(x[:, 6:], c)[0]], 1)
    assert c.length == 16 and torch.allclose(pieces, m(x)[0], atol=1e-5)
    with pytest.raises(ValueError, match="block_size"):
        m(x[:, :1], c)


def test_sampled_decoding_is_reproducible_and_leaves_the_training_mode():
    m = _model().train()
    a = generate(m, [1], 20, 0.8, torch.Generator().manual_seed(3))
    assert a == generate(m, [1], 20, 0.8, torch.Generator().manual_seed(3))
    assert a != generate(m, [1], 20, 0.8, torch.Generator().manual_seed(4))
    assert m.training


@pytest.mark.parametrize("dtype, elem", [(torch.float32, 4), (torch.bfloat16, 2)])
def test_cache_bytes_match_the_formula_for_mha_gqa_and_mqa(dtype, elem):
    sizes = {}
    for kv in (None, 2, 1):  # MHA (8 KV heads), GQA (n_heads / 4), MQA
        m = _model(n_heads=8, n_kv_heads=kv, d_model=64, block_size=32).to(dtype)
        c = KVCache.for_model(m)
        m(torch.randint(0, 30, (1, 9)), c)  # a 9-character prompt, then 3 decode steps
        for _ in range(3):
            m(torch.randint(0, 30, (1, 1)), c)
        heads = kv or 8
        assert c.k[0].dtype == dtype
        assert c.nbytes() == cache_bytes(2, heads, 8, elem, 32) == 2 * 2 * heads * 8 * elem * 32
        assert c.used_bytes() == cache_bytes(2, heads, 8, elem, 12)
        sizes[heads] = c.nbytes()
    assert sizes[8] == 4 * sizes[2] == 8 * sizes[1]


# ---- attention statistics ----------------------------------------------------------------------
@pytest.mark.parametrize("kv", [4, 2, 1])
def test_explicit_attention_matches_sdpa(kv):
    torch.manual_seed(0)
    q = torch.randn(2, 4, 12, 8)
    k, v = torch.randn(2, kv, 12, 8), torch.randn(2, kv, 12, 8)
    y, p = explicit_attention(q, k, v)
    assert (y - tr.attend(q, k, v)).abs().max() < 1e-5
    assert torch.allclose(p.sum(-1), torch.ones(2, 4, 12))
    assert (p.triu(1) == 0).all()  # causal: no weight on later keys
    m = _model(n_kv_heads=kv)
    maps, diff = attention_probs(m, torch.randint(0, 30, (2, 16)))
    assert len(maps) == 2 and maps[0].shape == (2, 4, 16, 16) and diff < 1e-5


def test_head_stats_against_a_hand_computation():
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                      [0.5, 0.5, 0.0, 0.0],
                      [0.2, 0.3, 0.5, 0.0],
                      [0.7, 0.1, 0.1, 0.1]])
    uniform = torch.ones(4, 4).tril() / torch.arange(1, 5)[:, None]
    ent, diag = head_stats(torch.stack([p, uniform])[None], window=1)
    rows = [0.0, math.log(2),
            -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5)),
            -(0.7 * math.log(0.7) + 0.3 * math.log(0.1))]
    assert ent[0].item() == pytest.approx(sum(rows) / 4, abs=1e-6)
    assert diag[0].item() == pytest.approx((1 + 1 + 0.8 + 0.2) / 4, abs=1e-6)
    assert ent[1].item() == pytest.approx(uniform_entropy(4), abs=1e-6)
    assert diag[1].item() == pytest.approx((1 + 1 + 2 / 3 + 2 / 4) / 4, abs=1e-6)


def test_head_types_check_the_diagonal_before_the_entropy():
    t = 16
    eye = torch.eye(t)
    first = torch.zeros(t, t)
    first[:, 0] = 1  # every query on the first character: sharp, not local
    uniform = torch.ones(t, t).tril() / torch.arange(1, t + 1)[:, None]
    half = 0.5 * uniform + 0.5 * first
    ent, diag = head_stats(torch.stack([eye, first, uniform, half])[None])
    types = [head_type(float(e), float(d), t) for e, d in zip(ent, diag, strict=True)]
    assert types == ["local", "copy", "broad", "mixed"], (ent, diag)
    assert head_type(0.1, 0.9, t) == "local"  # low entropy too, but the diagonal comes first


# ---- position encodings ------------------------------------------------------------------------
def test_only_sinusoidal_positions_tell_repeated_characters_apart():
    # the same character everywhere: with no encoding every position computes the same;
    # RoPE changes only the weights over identical values, so also the same; sinusoidal
    # rows added to the input make the positions differ
    x = torch.full((1, 16), 7)
    for pos, same in (("none", True), ("rope", True), ("sinusoidal", False)):
        out = _model(pos_encoding=pos)(x)[0][0]
        assert torch.allclose(out, out[:1].expand_as(out), atol=1e-5) == same, pos


# ---- in a run ----------------------------------------------------------------------------------
def test_a_run_logs_head_statistics_and_maps_and_they_can_be_switched_off(tmp_path):
    res = run_train(tmp_path, [*TINY, "network.n_kv_heads=2", "algo.total_steps=4"])
    m = res["metrics"]
    for tag in ("attention/entropy", "attention/diagonal_score", "attention/entropy_layer1",
                "attention/entropy/layer1/head3", "attention/diagonal_score/layer0/head0",
                "attention/heads_local", "attention/heads_broad"):
        assert tag in m, tag
    assert m["attention/sdpa_max_abs_diff"]["last"] < 1e-5
    assert sum(m[f"attention/heads_{k}"]["last"]
               for k in ("local", "copy", "broad", "mixed")) == 8
    assert 0 < m["attention/entropy"]["last"] <= uniform_entropy(16) + 1e-6
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0}).Reload()
    assert {"attention/maps/layer0", "attention/maps/layer1",
            "attention/entropy_heatmap"} <= set(ea.Tags()["images"])
    img = ea.Images("attention/maps/layer0")[-1]
    # four heads side by side, each 16 x 16 queries x keys drawn 4x, 2-pixel gaps
    assert (img.width, img.height) == (4 * (64 + 2) + 2, 64 + 4)
    off = run_train(tmp_path, [*TINY, "algo.total_steps=2", "algo.attention_stats=false"],
                    "off")
    assert not any(k.startswith("attention/") for k in off["metrics"])


# ---- scripts -----------------------------------------------------------------------------------
def _script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_lm_decode_agrees_and_measures_the_formula(capsys):
    mod = _script("bench_lm_decode")
    mod.cache_sizes(tokens=16)
    mod.decode_speed([12], rounds=1)
    out = capsys.readouterr().out
    rows = [r.split(" | ") for r in out.splitlines() if r.startswith(("| MHA", "| GQA", "| MQA"))]
    assert len(rows) == 6 and all(r[3] == r[4] for r in rows)  # measured == formula
    assert "| True |" in out  # same greedy tokens with and without the cache


def test_attention_report_tabulates_runs_and_draws_the_figures(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for pos in ("rope", "sinusoidal"):
        run_train(sweep, [*TINY, f"network.pos_encoding={pos}", "algo.total_steps=2"], pos)
    assert _script("lm_attention_report").main([str(sweep), "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "| MHA (4 q / 4 kv heads), rope | 1 | 2 |" in out and "sinusoidal | 1 | 2 |" in out
    assert {p.name for p in (tmp_path / "f").iterdir()} == {
        "lm_qk_distance.png", "lm_attention_maps_layer0.png", "lm_attention_maps_layer1.png"}
