"""Classifier-free guidance below the loops: the class-conditional UNet against the UNet of
before, label dropout, guided DDPM/DDIM sampling against Ho & Salimans' and diffusers'
formulas and against two separate forwards, CFG decoding of the LM against plain decoding,
decoding from the unconditional branch, recomputation and a hand-written reference, and the
labelled text corpus for the LM."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrun.core.errors import ConfigError, DataError
from rlrun.data.labelled_text import header, labelled_corpus
from rlrun.data.text import CharCorpus, TextConfig
from rlrun.data.text_classification import TextClassificationConfig, load_splits, read_table
from rlrun.nets.decode import generate, guided_scores
from rlrun.nets.diffusion import Diffusion, drop_labels, guided_eps, make_betas
from rlrun.nets.transformer import Transformer
from rlrun.nets.unet import UNet

from .unet_before_cfg import UNet as UNetBefore


@pytest.fixture(autouse=True)
def _one_thread():
    """Direct model calls on one thread (the machine is shared; spinning OpenMP threads)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = dict(ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4], groups=8,
             dropout=0.0)


def _perturb(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every weight a random push: the output conv (and each block's second conv) start
    at zero, so at initialisation eps = 0 and no comparison would mean anything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


# ---- the class-conditional UNet --------------------------------------------------------------
@pytest.mark.parametrize("c, size, kw", [
    (1, 8, SMALL),
    # the digits preset's network (configs/experiment/ddpm/digits.yaml), dropout included
    (1, 8, dict(ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[4], groups=8,
                dropout=0.1)),
    (3, 16, dict(ch=16, ch_mult=[1, 2, 2], num_res_blocks=2, attn_resolutions=[8], groups=8,
                 heads=2, activation="gelu")),
])
def test_unconditional_unet_is_the_unet_of_before(c, size, kw):
    torch.manual_seed(0)
    before = UNetBefore(c, size, **kw)
    torch.manual_seed(0)
    now = UNet(c, size, **kw, n_classes=None)
    a, b = before.state_dict(), now.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    _perturb(before), _perturb(now)
    x, t = torch.randn(4, c, size, size), torch.tensor([0, 7, 500, 999])
    assert torch.equal(before(x, t), now(x, t))
    # a conditional UNet from the same seed: the same layers, plus the class table
    torch.manual_seed(0)
    cond = UNet(c, size, **kw, n_classes=10)
    s = cond.state_dict()
    assert list(s) == [*b, "label.weight"]
    assert s["label.weight"].shape == (11, 4 * kw["ch"])
    torch.manual_seed(0)
    fresh = UNet(c, size, **kw)
    assert all(torch.equal(s[k], fresh.state_dict()[k]) for k in fresh.state_dict())


def test_conditional_unet_reads_its_label_and_no_label_is_the_null_class():
    torch.manual_seed(0)
    net = _perturb(UNet(1, 8, **SMALL, n_classes=3))
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([3, 3, 3, 3])
    out = net(x, t, torch.tensor([0, 1, 2, 3]))
    for i, j in ((0, 1), (1, 2), (2, 3)):  # the same image, another class: another eps
        assert not torch.allclose(net(x[i:i + 1], t[:1], torch.tensor([i]))[0],
                                  net(x[i:i + 1], t[:1], torch.tensor([j]))[0], atol=1e-3)
    assert torch.allclose(out[1], net(x[1:2], t[:1], torch.tensor([1]))[0], atol=1e-5)
    assert net.null_class == 3
    assert torch.equal(net(x, t), net(x, t, torch.full((4,), 3)))
    with pytest.raises(ValueError, match="unconditional"):
        UNet(1, 8, **SMALL)(x, t, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match="n_classes=0"):
        UNet(1, 8, **SMALL, n_classes=0)


def test_the_class_embedding_learns_with_the_rest():
    torch.manual_seed(0)
    net = _perturb(UNet(1, 8, **SMALL, n_classes=2))  # at init the zero output conv stops
    d = Diffusion(make_betas("linear", 50))  # every gradient but its own
    loss = d.loss(net, torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    assert net.label.weight.grad[:3].abs().sum(1).gt(0).all()  # both classes and the null
    # with and without labels, the loss draws the same t and noise
    torch.manual_seed(5)
    a = d.loss(lambda x, t, y=None: x, torch.zeros(3, 1, 8, 8), torch.tensor([0, 1, 2]))
    torch.manual_seed(5)
    assert torch.equal(a, d.loss(lambda x, t: x, torch.zeros(3, 1, 8, 8)))


# ---- label dropout ---------------------------------------------------------------------------
def test_label_dropout_drops_the_share_asked_for_from_the_generator_given():
    n, p, null = 40_000, 0.1, 10
    labels = torch.arange(n) % 10
    for gen, again in ((torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)),
                       (np.random.default_rng(0), np.random.default_rng(0))):
        out = drop_labels(labels, p, null, gen)
        dropped = out == null
        # binomial(40000, 0.1): sd 60, so 4 sd is 240 labels
        assert abs(int(dropped.sum()) - n * p) < 4 * (n * p * (1 - p)) ** 0.5
        assert torch.equal(out[~dropped], labels[~dropped])
        assert torch.equal(out, drop_labels(labels, p, null, again))
    # p_uncond = 0 keeps every label but still draws, so it moves no other random number
    g = torch.Generator().manual_seed(3)
    assert torch.equal(drop_labels(labels[:5], 0.0, null, g), labels[:5])
    assert torch.equal(torch.rand(3, generator=g),
                       torch.rand(8, generator=torch.Generator().manual_seed(3))[5:])
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match=rf"p_uncond={bad} must be in \[0, 1\)"):
            drop_labels(labels, bad, null)


# ---- guided sampling -------------------------------------------------------------------------
class CountingNet(torch.nn.Module):
    """A conditional UNet that counts its forward calls and the batch sizes they had."""

    def __init__(self, n_classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.net = _perturb(UNet(1, 8, **SMALL, n_classes=n_classes))
        self.null_class, self.batches = n_classes, []

    def forward(self, x, t, y=None):
        self.batches.append(len(x))
        return self.net(x, t, y)


def test_guided_eps_is_ho_salimans_w_and_diffusers_guidance_scale():
    net = CountingNet()
    x, t, y = torch.randn(5, 1, 8, 8), torch.full((5,), 20), torch.tensor([0, 1, 2, 0, 1])
    eps_c, eps_u = net(x, t, y), net(x, t)
    net.batches.clear()
    for w in (0.5, 2.0, 4.0):
        got = guided_eps(net, x, t, y, w)
        # Ho & Salimans eq. 6 (and TeaPearce/Conditional_Diffusion_MNIST): (1 + w) e_c - w e_u
        assert torch.allclose(got, (1 + w) * eps_c - w * eps_u, atol=1e-5)
        # diffusers' pipelines: e_u + s (e_c - e_u) with guidance_scale s = 1 + w
        s = 1 + w
        assert torch.allclose(got, eps_u + s * (eps_c - eps_u), atol=1e-5)
    assert net.batches == [10, 10, 10]  # one forward of both branches per call
    net.batches.clear()
    assert torch.equal(guided_eps(net, x, t, y, 0.0), eps_c) and net.batches == [5]
    with pytest.raises(ValueError, match="class labels"):
        guided_eps(net, x, t, None, 1.0)
    with pytest.raises(ValueError, match="class-conditional model"):
        guided_eps(lambda x, t, y: x, x, t, y, 1.0)


def _draw(d: Diffusion, model, sampler: str, **kw) -> torch.Tensor:
    args = dict(steps=8, eta=0.5) if sampler == "ddim" else dict(variance="beta")
    return d.sample(model, (6, 1, 8, 8), sampler, generator=torch.Generator().manual_seed(1),
                    **args, **kw)[0]


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guidance_0_is_plain_conditional_sampling_exactly(sampler):
    d, net = Diffusion(make_betas("linear", 30, 1e-3, 0.2)), CountingNet()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = _draw(d, lambda x, t: net(x, t, y), sampler)
    assert torch.equal(_draw(d, net, sampler, labels=y, guidance=0.0), plain)
    assert torch.equal(_draw(d, net, sampler, labels=y), plain)
    # and the labels matter: another class, other images from the same noise
    assert not torch.allclose(_draw(d, net, sampler, labels=y.roll(1)), plain, atol=1e-3)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guided_sampling_is_one_batched_forward_per_step_equal_to_two(sampler):
    d, net, w = Diffusion(make_betas("linear", 30, 1e-3, 0.2)), CountingNet(), 2.0
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    null = torch.full_like(y, net.null_class)

    def two_forwards(x, t):  # the reference: each branch on its own
        return (1 + w) * net(x, t, y) - w * net(x, t, null)

    reference = _draw(d, two_forwards, sampler)
    net.batches.clear()
    guided = _draw(d, net, sampler, labels=y, guidance=w)
    steps = len(d.timesteps_for(sampler, 8))
    assert net.batches == [12] * steps
    assert torch.allclose(guided, reference, atol=1e-4)
    assert not torch.allclose(guided, _draw(d, net, sampler, labels=y), atol=1e-2)
    with pytest.raises(ValueError, match=r"one per image, \(6,\)"):
        _draw(d, net, sampler, labels=y[:3], guidance=w)


@pytest.mark.slow
def test_a_conditional_unet_learns_its_classes_and_guidance_sharpens_them():
    """Two classes of flat images (class 0 dark, class 1 light, noisy): trained with label
    dropout, conditional DDIM samples take their class's brightness, more so with w = 3."""
    torch.manual_seed(0)
    net, d = UNet(1, 8, **SMALL, n_classes=2), Diffusion(make_betas("linear", 100, 1e-3, 0.05))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(250):  # about 20 s on a shared 2-core machine
        y = torch.randint(0, 2, (32,), generator=g)
        x0 = (y.float() * 1.2 - 0.6)[:, None, None, None] + 0.3 * torch.randn(32, 1, 8, 8,
                                                                              generator=g)
        loss = d.loss(net, x0.clamp(-1, 1), drop_labels(y, 0.2, 2, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    y, gap = torch.tensor([0, 1] * 16), None
    for w in (0.0, 3.0):
        x = d.sample(net, (32, 1, 8, 8), "ddim", 20, generator=torch.Generator().manual_seed(2),
                     labels=y, guidance=w)[0]
        mean = x.mean((1, 2, 3))
        assert (mean[y == 0] < 0).all() and (mean[y == 1] > 0).all(), (w, mean)
        if gap is not None:
            assert (mean[y == 1] - mean[y == 0]).mean() > gap
        gap = (mean[y == 1] - mean[y == 0]).mean()


# ---- CFG decoding ----------------------------------------------------------------------------
def _lm(seed: int = 0, **kw) -> Transformer:
    """A small model with larger-than-init weights (decoding is not one repeated character)."""
    torch.manual_seed(seed)
    m = Transformer(**{**dict(vocab_size=30, d_model=32, n_layers=2, n_heads=4, block_size=16,
                              d_ff=64), **kw})
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3)
    return m.eval()


PROMPT, NEG = [5, 9, 2, 14, 7], [3, 3, 21]


def _gen(m, prompt, n=40, seed=None, **kw):
    g = None if seed is None else torch.Generator().manual_seed(seed)
    return generate(m, prompt, n, 0.9, g, greedy=seed is None, **kw)


@pytest.mark.parametrize("seed", [None, 0, 1])  # greedy, then sampling with two seeds
@pytest.mark.parametrize("neg", [None, NEG])
def test_guidance_scale_1_decodes_the_plain_tokens(seed, neg):
    m = _lm()
    # 5 + 40 characters > block_size 16: both contexts are cut (and their caches refilled)
    plain = _gen(m, PROMPT, seed=seed)
    assert _gen(m, PROMPT, seed=seed, guidance_scale=1.0, negative_prompt=neg) == plain
    assert len(set(plain)) > 3
    assert _gen(m, PROMPT, seed=seed, guidance_scale=3.0, negative_prompt=neg) != plain


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_guidance_scale_0_decodes_from_the_unconditional_branch(seed):
    m = _lm()
    # with a negative prompt, that prompt; without one, the prompt's last character alone
    assert _gen(m, PROMPT, seed=seed, guidance_scale=0.0, negative_prompt=NEG) \
        == _gen(m, NEG, seed=seed)
    assert _gen(m, PROMPT, seed=seed, guidance_scale=0.0) == _gen(m, PROMPT[-1:], seed=seed)
    assert _gen(m, PROMPT, seed=seed, guidance_scale=0.0, negative_prompt=[]) \
        == _gen(m, PROMPT[-1:], seed=seed)
    assert _gen(m, PROMPT, seed=seed) != _gen(m, PROMPT[-1:], seed=seed)


@pytest.mark.parametrize("kw", [dict(), dict(n_kv_heads=1, pos_encoding="sinusoidal")])
@pytest.mark.parametrize("gamma", [1.5, 3.0, -0.5])
def test_guided_decoding_with_the_caches_equals_recomputation(gamma, kw):
    m = _lm(**kw)
    for neg, seed in ((None, None), (NEG, 4), (list(range(20)), None)):  # 20 > block_size 16
        cached = _gen(m, PROMPT, 36, seed, guidance_scale=gamma, negative_prompt=neg)
        assert cached == _gen(m, PROMPT, 36, seed, guidance_scale=gamma,
                              negative_prompt=neg, cache=False)


def test_guided_decoding_equals_a_hand_written_reference():
    """Within one block (no cut): every step runs both whole contexts and combines them as
    transformers' UnbatchedClassifierFreeGuidanceLogitsProcessor does,
    gamma * (log_softmax(cond) - log_softmax(uncond)) + log_softmax(uncond)."""
    m, gamma, n = _lm(1), 2.0, 10
    cond, uncond = list(PROMPT), list(PROMPT[-1:])
    for _ in range(n):
        with torch.no_grad():
            lc = m(torch.tensor([cond]))[0][0, -1].log_softmax(-1)
            lu = m(torch.tensor([uncond]))[0][0, -1].log_softmax(-1)
        nxt = int((gamma * (lc - lu) + lu).argmax())
        cond.append(nxt)
        uncond.append(nxt)
    assert _gen(m, PROMPT, n, guidance_scale=gamma) == cond[len(PROMPT):]
    # the scores themselves, at the precision float32 gives
    a, b = torch.randn(2, 30, generator=torch.Generator().manual_seed(0))
    ref = gamma * (a.log_softmax(-1) - b.log_softmax(-1)) + b.log_softmax(-1)
    assert torch.allclose(guided_scores(a, b, gamma), ref, atol=1e-6)
    assert torch.equal(guided_scores(a, b, 0.0), b.log_softmax(-1))


def test_guided_decoding_leaves_the_training_mode():
    m = _lm().train()
    _gen(m, PROMPT, 5, 0, guidance_scale=2.0)
    assert m.training


# ---- the labelled corpus for the LM ------------------------------------------------------------
def _rows(n: int) -> list[tuple[str, str]]:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "sigma", "omega", "kappa", "theta"]
    return [(" ".join(rng.choices(words, k=12)) + f" doc {i}", ["json", "email", "http"][i % 3])
            for i in range(n)]


def _csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def test_labelled_corpus_is_each_training_document_under_its_header(tmp_path):
    rows = _rows(90)
    cfg = TextClassificationConfig(source="csv", path=str(_csv(tmp_path / "a.csv", rows)))
    text = labelled_corpus(cfg)
    train, val, test = load_splits(cfg)
    docs = text.split("\n\n")
    assert len(docs) == len(train)
    assert sorted(d.rstrip("\n") for d in docs) == sorted(f"[{lab}]\n{t}" for t, lab in train)
    assert not any(t in text for t, _ in val + test)
    assert header("json") == "[json]\n" and text.count("[json]\n") == sum(
        lab == "json" for _, lab in train)
    # the order is fixed by the texts, not the file: the same corpus from shuffled rows
    shuffled = random.Random(1).sample(rows, len(rows))
    again = TextClassificationConfig(source="csv", path=str(_csv(tmp_path / "b.csv", shuffled)))
    assert labelled_corpus(again) == text
    # the classes are interleaved, not one block each
    labels = [d[1:d.index("]")] for d in docs]
    assert sum(a != b for a, b in zip(labels, labels[1:], strict=False)) > len(labels) / 3
    everything = labelled_corpus(cfg, ("train", "val", "test"))
    assert all(t in everything for t, _ in train + val + test)
    # what the LM's data path reads
    corpus = CharCorpus(TextConfig(val_fraction=0.1, split_block=64), 16, text=text)
    assert corpus.decode(corpus.encode("[http]\n")) == "[http]\n"
    assert len(corpus.train) + len(corpus.val) == len(text)


def test_labelled_corpus_of_the_offline_docstrings():
    cfg = TextClassificationConfig(packages=["json", "tomllib"])
    text = labelled_corpus(cfg)
    n = {lab: sum(x == lab for _, x in load_splits(cfg)[0]) for lab in ("json", "tomllib")}
    assert n["json"] > 5 and n["tomllib"] > 2
    assert text.startswith("[") and text.count("[json]\n") == n["json"]
    assert text.count("[tomllib]\n") == n["tomllib"]


def test_csv_fields_keep_their_line_breaks_in_the_corpus(tmp_path):
    # a quoted CSV field over two lines: read_table once joined them ("line oneline two")
    rows = [("line one\nline two", "a"), *_rows(40)]
    p = _csv(tmp_path / "a.csv", rows)
    assert read_table(str(p), "text", "label")[0] == ("line one\nline two", "a")
    text = labelled_corpus(TextClassificationConfig(source="csv", path=str(p)),
                           ("train", "val", "test"))
    assert "[a]\nline one\nline two\n" in text


def test_labelled_corpus_errors_are_one_line(tmp_path):
    rows = [(t, "two\nlines" if i == 0 else lab) for i, (t, lab) in enumerate(_rows(30))]
    cfg = TextClassificationConfig(source="csv", path=str(_csv(tmp_path / "a.csv", rows)))
    with pytest.raises(DataError, match=r"label 'two\\nlines' holds a line break"):
        labelled_corpus(cfg, ("train", "val", "test"))
    with pytest.raises(ConfigError, match=r"splits=\['dev'\]: name one or more of train"):
        labelled_corpus(cfg, ("dev",))
