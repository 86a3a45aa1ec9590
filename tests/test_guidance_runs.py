"""Classifier-free guidance in the loops, in rlrun-eval and in the measuring scripts: the DDPM
loop with `algo.conditional` (off: exactly the loop of before; on: label dropout, a grid row per
class, `eval/class_accuracy`), `rlrun-eval class= guidance=` and `cfg= negative_prompt=`, the
LM's guided training samples, the labelled-docstrings env, and the two scripts end to end on
tiny budgets (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlrun.core.errors import ConfigError
from rlrun.eval import evaluate, main
from rlrun.testing import assert_same_state

from .conftest import compose_cfg, run_train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def fid_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fid")


@pytest.fixture
def tiny(fid_cache):
    """A run of a few seconds: a small UNet, T = 20, DDIM over 4 steps, 40 evaluation samples."""
    return ["algo=ddpm", "threads=1", "checkpoint_every_s=0", "algo.timesteps=20",
            "algo.batch_size=16", "algo.total_steps=6", "algo.log_every=3",
            "algo.sample_every=0", "algo.grid_samples=20", "algo.strip_rows=3",
            "algo.strip_columns=2", "algo.eval_samples=40", f"algo.fid_cache_dir={fid_cache}",
            "algo.fid_classifier_steps=20", "algo.sampler=ddim", "algo.sample_steps=4",
            "network.ch=8", "network.groups=4", "network.ch_mult=[1]",
            "network.num_res_blocks=1", "network.attn_resolutions=[]"]


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def _timeless(res: dict) -> dict:
    return {k: v for k, v in res["metrics"].items()
            if k not in ("charts/images_per_s", "eval/sampling_s_per_image")}


# ---- DDPM: the loop ---------------------------------------------------------------------------
def test_an_unconditional_run_trains_exactly_as_the_loop_of_before(tmp_path, tiny):
    """algo.conditional=false (p_uncond set, to show it is not read) against the DDPM loop as
    it was before guidance (tests/ddpm_before_cfg.py): the same parameters, EMA, optimiser and
    RNG states after the same steps, the same numbers and the same final grid."""
    few = [*tiny, "algo.total_steps=4", "algo.eval_samples=16"]
    before = run_train(tmp_path, [*few, "algo.loop=tests.ddpm_before_cfg.run"], "before")
    now = run_train(tmp_path, [*few, "algo.conditional=false", "algo.p_uncond=0.5"], "now")
    assert_same_state(tmp_path / "before", tmp_path / "now")
    assert _timeless(now) == _timeless(before)
    assert "eval/class_accuracy" not in now["metrics"]
    for png in ("samples.png", "denoising.png"):
        assert np.array_equal(_png(tmp_path / "now" / png), _png(tmp_path / "before" / png))


def test_a_conditional_run_drops_labels_and_logs_a_row_per_class(tmp_path, tiny, monkeypatch):
    import rlrun.algos.ddpm as ddpm

    calls = []

    def spy(labels, p_uncond, null_class, generator=None):
        calls.append((labels.clone(), p_uncond, null_class))
        return drop(labels, p_uncond, null_class, generator)

    drop = ddpm.drop_labels
    monkeypatch.setattr(ddpm, "drop_labels", spy)
    res = run_train(tmp_path, [*tiny, "algo.conditional=true", "algo.p_uncond=0.3",
                               "algo.guidance=1"])
    assert len(calls) == 6 and all(p == 0.3 and null == 10 for _, p, null in calls)
    assert all(len(y) == 16 and y.max() < 10 for y, _, _ in calls)  # the batch's digits
    acc = res["metrics"]["eval/class_accuracy"]["last"]
    assert 0 <= acc <= 1 and "eval/fid" in res["metrics"]
    # 20 grid samples of 10 classes: 10 rows of 2 digits of 8 px, 1 px pads, scaled x4
    assert _png(tmp_path / "run" / "samples.png").shape == ((10 * 9 + 1) * 4, (2 * 9 + 1) * 4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0}).Reload()
    summary = ea.Tensors("eval/summary/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert f"guidance w=1: {acc:.1%} of the samples classified as the class asked for" \
        in summary


def test_sample_gives_each_chunk_its_labels_and_the_guidance_asked_for():
    """Labels are sliced per chunk of `algo.sample_batch`; w > 0 is one forward of the
    chunk twice over (labels, then the null class); the noise is the same whatever w."""
    from rlrun.algos.ddpm import class_rows, sample
    from rlrun.nets.diffusion import Diffusion, make_betas
    from rlrun.schemas.ddpm import DDPMConfig

    class Stub(torch.nn.Module):
        null_class = 10

        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x, t, y=None):
            self.seen.append(y.clone())
            return 0.1 * x + (0 if y is None else 0.01 * y[:, None, None, None])

    stub = Stub()
    cfg = DDPMConfig(sample_batch=7, sampler="ddim", sample_steps=2, conditional=True,
                     guidance=2.0)
    diff = Diffusion(make_betas("linear", 10))
    labels = class_rows(10, 20)
    assert labels.tolist() == [c for c in range(10) for _ in range(2)]
    guided, _ = sample(SimpleNamespace(module=stub), diff, cfg, 20, (1, 2, 2), 0,
                       labels=labels)
    chunks = [stub.seen[i] for i in range(0, len(stub.seen), 2)]  # two steps per chunk
    assert [len(y) for y in chunks] == [14, 14, 12]  # 7 + 7 + 6 images, doubled
    assert torch.equal(torch.cat([y[:len(y) // 2] for y in chunks]), labels)
    assert all((y[len(y) // 2:] == 10).all() for y in chunks)
    stub.seen.clear()
    plain, _ = sample(SimpleNamespace(module=stub), diff, cfg, 20, (1, 2, 2), 0,
                      labels=labels, guidance=0.0)
    assert [len(y) for y in stub.seen[::2]] == [7, 7, 6]  # w = 0: no unconditional half
    assert not torch.allclose(guided, plain)


def test_class_accuracy_is_the_share_the_classifier_gives_the_class_asked_for(fid_cache):
    from rlrun.data.fid import FidEvaluator
    from rlrun.data.images import ImageDataConfig, load_images

    data = load_images(ImageDataConfig(name="digits", kind="images"))
    ev = FidEvaluator(data, fid_cache, train_steps=20)
    x, y = data.images[:300], data.labels[:300]
    predicted = torch.from_numpy(ev.features(x)[1].argmax(1))
    r = ev.evaluate(x, y)
    assert r["class_accuracy"] == pytest.approx(float((predicted == y).double().mean()))
    assert ev.evaluate(x, predicted)["class_accuracy"] == 1.0
    assert ev.evaluate(x, (predicted + 1) % 10)["class_accuracy"] == 0.0
    assert "class_accuracy" not in ev.evaluate(x)


# ---- DDPM: rlrun-eval -------------------------------------------------------------------------
def _fails(argv: list[str], capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("rlrun-eval: error: ")
    return err


def test_rlrun_eval_draws_a_class_or_a_row_per_class(tmp_path, tiny, capsys):
    run_train(tmp_path, [*tiny, "algo.conditional=true", "algo.guidance=1",
                         "algo.eval_samples=0"])
    run = tmp_path / "run"
    rec = evaluate(run)  # the run's own final grid: one row per class at w = 1
    assert rec["settings"] == {"seed": 0, "device": "cpu", "samples": 20, "sampler": "ddim",
                               "steps": 4, "class": "all", "guidance": 1.0}
    assert np.array_equal(_png(run / "eval_samples.png"), _png(run / "samples.png"))
    rec = evaluate(run, {"class": 3, "guidance": 2.0, "samples": 64})
    assert rec["settings"]["class"] == 3 and rec["settings"]["guidance"] == 2.0
    assert _png(run / "eval_samples.png").shape == ((8 * 9 + 1) * 4,) * 2  # 8 x 8 threes
    evaluate(run, {"class": "all", "samples": 30})
    assert _png(run / "eval_samples.png").shape == ((10 * 9 + 1) * 4, (3 * 9 + 1) * 4)
    err = _fails([str(run), "class=10"], capsys)
    assert "class=10 is out of range: the model knows classes 0..9 (env=digits)" in err
    assert "class='three' must be all or a class index" in _fails([str(run), "class=three"],
                                                                  capsys)
    assert "guidance='-1' must be a number >= 0" in _fails([str(run), "guidance=-1"], capsys)


def test_rlrun_eval_refuses_classes_and_guidance_of_an_unconditional_run(tmp_path, tiny,
                                                                         capsys):
    run_train(tmp_path, [*tiny, "algo.eval_samples=0"])
    run = tmp_path / "run"
    for opt in ("class=3", "guidance=2"):
        err = _fails([str(run), opt], capsys)
        assert f"{opt} asks a class-conditional model, and this run's is unconditional" \
               " (algo.conditional=false)" in err
    assert evaluate(run)["settings"] == {"seed": 0, "device": "cpu", "samples": 20,
                                         "sampler": "ddim", "steps": 4}


def test_rlrun_eval_names_an_unlabelled_image_folder(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(folder / f"{i}.png")
    run_train(tmp_path, ["algo=ddpm", "env=image_folder", f"env.path={folder}", "threads=1",
                         "checkpoint_every_s=0", "algo.timesteps=10", "algo.batch_size=4",
                         "algo.total_steps=2", "algo.grid_samples=2", "algo.strip_rows=1",
                         "algo.strip_columns=2", "algo.eval_samples=0", "algo.sampler=ddim",
                         "algo.sample_steps=2", "network.ch=8", "network.groups=4",
                         "network.ch_mult=[1]", "network.num_res_blocks=1",
                         "network.attn_resolutions=[]"])
    err = _fails([str(tmp_path / "run"), "class=0"], capsys)
    assert "(algo.conditional=false, and env=image_folder has no class labels)" in err


# ---- the LM: guided samples in training and in rlrun-eval ---------------------------------------
LM = ["algo=lm", "threads=1", "checkpoint_every_s=0", "network.d_model=32", "network.n_layers=1",
      "network.n_heads=2", "network.block_size=16", "network.d_ff=64", "env.max_chars=20000",
      "algo.batch_size=8", "algo.eval_batches=2", "algo.total_steps=20", "algo.sample_chars=40",
      "algo.attention_stats=false"]


def test_lm_logs_guided_samples_and_rlrun_eval_decodes_them_again(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlrun.algos.lm import sample_generator
    from rlrun.core import state as tracked_state
    from rlrun.core.checkpoint import load_checkpoint
    from rlrun.data.text import CharCorpus
    from rlrun.nets import build_network
    from rlrun.nets.decode import generate
    from rlrun.preflight import preflight

    trained = [*LM, "algo.total_steps=150"]  # past uniform guesses: guidance changes draws
    run_train(tmp_path, [*trained, "algo.sample_cfg=2.5", "algo.sample_negative_prompt=def"])
    run = tmp_path / "run"
    ea = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload()
    logged = ea.Tensors("eval/sample/text_summary")[-1].tensor_proto.string_val[0].decode()
    # the same text from the saved model, decoded by hand with CFG (gamma 2.5, "def")
    cfg = compose_cfg(LM)
    corpus = CharCorpus(preflight(cfg).env, 16)
    model = build_network(cfg.network, vocab_size=corpus.vocab_size)
    tracked_state.load(model, load_checkpoint(run / "checkpoints" / "last.pt")["loop"]["model"])
    ids = generate(model, corpus.encode("The "), 40, 0.8, sample_generator(0, 150, "cpu"),
                   guidance_scale=2.5, negative_prompt=corpus.encode("def"))
    text = corpus.decode(ids)
    assert logged == "    " + ("The " + text).replace("\n", "\n    ")
    plain = corpus.decode(generate(model, corpus.encode("The "), 40, 0.8,
                                   sample_generator(0, 150, "cpu")))
    assert plain != text
    # rlrun-eval: the run's own guided sample by default, plain decoding at cfg=1
    rec = evaluate(run)
    assert rec["text"] == text and rec["settings"]["cfg"] == 2.5
    assert rec["settings"]["negative_prompt"] == "def"
    assert evaluate(run, {"cfg": 2.5})["text"] == text  # the run's negative prompt
    other = evaluate(run, {"cfg": 2.5, "negative_prompt": "the "})["text"]
    assert other == corpus.decode(generate(model, corpus.encode("The "), 40, 0.8,
                                           sample_generator(0, 150, "cpu"), guidance_scale=2.5,
                                           negative_prompt=corpus.encode("the ")))
    rec = evaluate(run, {"cfg": 1.0})  # plain decoding, the run's negative prompt unused
    assert rec["text"] == plain and rec["settings"]["cfg"] == 1.0
    # gamma 4 with an empty negative prompt: the prompt's last character alone
    rec = evaluate(run, {"cfg": 4.0, "negative_prompt": ""})
    assert rec["settings"]["negative_prompt"] == ""
    assert rec["text"] == corpus.decode(generate(model, corpus.encode("The "), 40, 0.8,
                                                 sample_generator(0, 150, "cpu"),
                                                 guidance_scale=4.0))
    err = _fails([str(run), "negative_prompt=\u2603x\u00e9"], capsys)
    assert "negative_prompt='\u2603x\u00e9' holds characters the model never saw:" \
           " '\u00e9\u2603'" in err
    err = _fails([str(run), "cfg=1", "negative_prompt=the "], capsys)
    assert "negative_prompt='the ' changes nothing at cfg=1 (plain decoding)" in err
    assert "cfg='-0.5' must be a number >= 0" in _fails([str(run), "cfg=-0.5"], capsys)


# ---- the labelled corpus as an env --------------------------------------------------------------
def test_labelled_docstrings_is_the_labelled_corpus_under_the_lms_split(tmp_path):
    from rlrun.data.labelled_text import labelled_corpus
    from rlrun.data.text import CharCorpus, load_text
    from rlrun.preflight import preflight

    rows = [(f"text {i} about {'cats' if i % 2 else 'dogs'} and more words", "ab"[i % 2])
            for i in range(300)]
    path = tmp_path / "a.csv"
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    over = ["algo=lm", "env=labelled_docstrings", "env.source=csv", f"env.path={path}",
            "network.block_size=16"]
    env = preflight(compose_cfg(over)).env
    assert load_text(env) == labelled_corpus(env, ["train"])
    assert load_text(env).startswith(("[a]\ntext ", "[b]\ntext "))
    both = preflight(compose_cfg([*over, "env.splits=[train,val]"])).env
    assert len(load_text(both)) > len(load_text(env))
    corpus = CharCorpus(env, 16)
    assert set("[]ab\n") <= set(corpus.chars) and len(corpus.val) > 0
    with pytest.raises(ConfigError, match=r"env.splits='dev' must be one of train, val, test"):
        preflight(compose_cfg([*over, "env.splits=[dev]"]))
    with pytest.raises(ConfigError, match=r"env.splits=\[\]: name one or more"):
        preflight(compose_cfg([*over, "env.splits=[]"]))


def test_lm_negative_prompt_characters_are_checked_before_the_run_dir(tmp_path):
    from rlrun.preflight import preflight

    cfg = compose_cfg(["algo=lm", "algo.sample_cfg=2", "algo.sample_negative_prompt='x\u2603y'"])
    with pytest.raises(ConfigError, match="algo.sample_negative_prompt='x\u2603y' holds"
                                          " characters outside the corpus's vocabulary:"
                                          " '\u2603'"):
        preflight(cfg)
    preflight(cfg, data=False)  # rlrun-eval's preflight: no data, no such check
    ok = compose_cfg(["algo=lm", "algo.sample_cfg=2", "algo.sample_negative_prompt=xy"])
    assert preflight(ok).algo.sample_negative_prompt == "xy"


# ---- the scripts, end to end on tiny budgets ---------------------------------------------------
def _script(name: str, *args: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_bench_cfg_digits_end_to_end(tmp_path):
    out = _script("bench_cfg_digits.py", "--out", str(tmp_path / "b"), "--seeds", "0", "1",
                  "--steps", "30", "--samples", "40", "--weights", "0", "2",
                  "--sample-steps", "5", "--override", "algo.timesteps=50",
                  "algo.fid_classifier_steps=20", f"algo.fid_cache_dir={tmp_path / 'fid'}",
                  "network.ch=8", "network.ch_mult=[1,2]", "network.attn_resolutions=[]",
                  cwd=tmp_path)
    res = json.loads((tmp_path / "b" / "cfg_digits.json").read_text())
    assert res["train_steps"] == 30 and set(res["results"]) == {"0", "1"}
    for rows in res["results"].values():
        assert [r["w"] for r in rows] == [0, 2]
        assert all(0 <= r["class_accuracy"] <= 1 and r["fid"] > 0 for r in rows)
    assert "| 2 (3) |" in out
    for png in ("cfg_digits.png", "grid_w0.png", "grid_w2.png", "cfg_grids.png"):
        assert (tmp_path / "b" / png).is_file()


@pytest.mark.slow
def test_cfg_on_topic_end_to_end(tmp_path):
    out = _script("cfg_on_topic.py", "--out", str(tmp_path / "t"), "--seeds", "0", "--n", "2",
                  "--chars", "30", "--gammas", "1", "3", "--env", "env.packages=[json,email]",
                  "--lm", "algo.total_steps=20", "network.d_model=32", "algo.eval_every=0",
                  "algo.attention_stats=false", "--clf", "algo.total_steps=10", cwd=tmp_path)
    res = json.loads((tmp_path / "t" / "on_topic.json").read_text())
    r = res["results"]["0"]
    assert set(r["gammas"]) == {"1.0", "3.0"}
    for g in ("1.0", "3.0"):
        assert 0 <= r["gammas"][g]["on_topic"] <= 1 and r["gammas"][g]["ppl_uncond"] > 1
        assert len(r["samples"][g]) == 2 * 2  # two classes, two continuations each
        assert all(len(t) <= 30 and "\n\n" not in t for _, t in r["samples"][g])
    assert "| real test documents (LM's header accuracy" in out
