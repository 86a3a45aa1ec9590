"""DDPM: schedule arithmetic, the UNet, samplers, EMA, a tiny learning run, exact resume,
data errors."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from rlrun.core.errors import ConfigError, DataError, PairingError
from rlrun.data.images import ImageDataConfig
from rlrun.nets.diffusion import Diffusion, make_betas
from rlrun.nets.unet import UNet

from .conftest import compose_cfg, interrupt_and_resume, read_results, rlrun_cli, run_train


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions on a busy 2-core machine: one thread is many times faster. Also
    undo what `deterministic=true` runs switch on for the whole process."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)


@pytest.fixture(scope="module")
def fid_cache(tmp_path_factory):
    """One FID classifier for the module's runs (trained by the first, loaded by the rest)."""
    return tmp_path_factory.mktemp("fid")


@pytest.fixture
def tiny(fid_cache):
    """A few-second run: small UNet, T=50, few samples, a briefly trained FID classifier."""
    return ["algo=ddpm", "threads=1", "algo.timesteps=50", "algo.batch_size=32",
            "algo.log_every=10", "algo.grid_samples=16", "algo.strip_rows=2",
            "algo.strip_columns=4", "algo.eval_samples=64", "algo.fid_classifier_steps=60",
            f"algo.fid_cache_dir={fid_cache}", "network.ch=16", "network.groups=8",
            "network.ch_mult=[1,2]", "network.num_res_blocks=1", "network.attn_resolutions=[4]"]


# ---- the process ---------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_alpha_bar_is_the_cumulative_product(schedule):
    betas = make_betas(schedule, 1000)
    d = Diffusion(betas)
    assert torch.allclose(d.abar, torch.cumprod(1 - betas, 0))
    assert torch.all(betas > 0) and torch.all(betas <= 0.999)
    assert torch.all(d.abar[1:] < d.abar[:-1]) and d.abar[-1] < 1e-3
    if schedule == "linear":
        assert math.isclose(betas[0], 1e-4) and math.isclose(betas[-1], 0.02)
    else:  # Nichol & Dhariwal: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)
        f = [math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in (0, 500)]
        assert math.isclose(d.abar[499], f[1] / f[0], rel_tol=1e-9)


def test_q_sample_has_the_closed_form_mean_and_variance():
    d = Diffusion(make_betas("linear", 1000))
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0]).repeat(50_000, 1)
    for t in (0, 100, 999):
        tt = torch.full((len(x0),), t)
        xt = d.q_sample(x0, tt, torch.randn(x0.shape, generator=torch.Generator().manual_seed(t)))
        abar = float(torch.prod(1 - make_betas("linear", 1000)[:t + 1]))
        assert torch.allclose(xt.mean(0), math.sqrt(abar) * x0[0], atol=0.015)
        assert torch.allclose(xt.var(0), torch.full((4,), 1 - abar), atol=0.015, rtol=0.03)


@pytest.mark.parametrize("c, size, mult, attn", [(1, 8, [1, 2, 2], [4]), (3, 16, [1, 2, 2], [8]),
                                                 (1, 12, [1, 2], [6]), (1, 32, [1, 2, 2, 2], [8])])
def test_unet_keeps_the_image_shape(c, size, mult, attn):
    net = UNet(c, size, ch=16, ch_mult=mult, num_res_blocks=1, attn_resolutions=attn,
               groups=8, heads=2)
    x = torch.randn(3, c, size, size)
    assert net(x, torch.tensor([0, 10, 999])).shape == x.shape


def test_unet_refuses_sizes_and_widths_that_do_not_fit(tmp_path):
    with pytest.raises(ConfigError, match="does not divide by the UNet's down-sampling factor 4"):
        UNet(1, 10, ch=16, ch_mult=[1, 2, 2], groups=8)
    # widths are the schema's to check, before the run (no run dir)
    with pytest.raises(ConfigError, match=r"^network.groups=32 and heads=1 must both divide"
                                          r" every channel width \(\[16, 32\] from"):
        run_train(tmp_path, ["algo=ddpm", "network.ch=16", "network.ch_mult=[1,2]"])
    assert not (tmp_path / "run").exists()


def _random_unet(T: int) -> UNet:
    torch.manual_seed(0)
    net = UNet(1, 8, ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4], groups=8,
               dropout=0.0)
    with torch.no_grad():  # the output conv starts at zero (eps = 0): give it weights
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def test_ddim_with_eta_1_over_all_steps_is_the_ddpm_sampler():
    T = 40
    d, net = Diffusion(make_betas("linear", T, 1e-3, 0.2)), _random_unet(T)

    def draw(**kw):
        return d.sample(net, (6, 1, 8, 8), generator=torch.Generator().manual_seed(1), **kw)[0]

    ddpm = draw(sampler="ddpm", variance="beta_tilde")
    ddim = draw(sampler="ddim", steps=T, eta=1.0)
    assert torch.allclose(ddpm, ddim, atol=1e-4)
    assert not torch.allclose(ddpm, draw(sampler="ddpm", variance="beta"), atol=1e-2)
    # eta=0 is deterministic given x_T, and visits the requested number of steps
    assert not torch.allclose(ddim, draw(sampler="ddim", steps=T, eta=0.0), atol=1e-2)
    assert d.timesteps_for("ddim", 10) == [39, 35, 30, 26, 22, 17, 13, 9, 4, 0]


def test_ema_update_is_the_moving_average(tmp_path):
    from rlrun.algos.ddpm import build
    from rlrun.data.images import load_images
    from rlrun.preflight import preflight

    cfg = compose_cfg(["algo=ddpm", "network.ch=16", "network.groups=8", "network.ch_mult=[1,2]",
                       "network.num_res_blocks=1", "env.limit=4", "algo.ema_decay=0.9"])
    plan = preflight(cfg)
    net, ema, _ = build(cfg.network, load_images(plan.env), plan.algo, "cpu")
    ema.update_parameters(net)  # the first update copies the weights
    before = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update_parameters(net)
    for e, b, p in zip(ema.module.parameters(), before, net.parameters(), strict=True):
        assert torch.allclose(e, 0.9 * b + 0.1 * p, atol=1e-6)


def test_frechet_distance_of_gaussians():
    from rlrun.data.fid import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(20_000, 3))
    assert frechet_distance(a, a) < 1e-9
    # N(0, I) vs N(m, 4I): |m|^2 + Tr(I + 4I - 2 * 2I) = |m|^2 + 3
    b = 2 * rng.normal(size=(20_000, 3)) + np.array([1.0, 0.0, 2.0])
    assert abs(frechet_distance(a, b) - 8.0) < 0.2


# ---- runs ----------------------------------------------------------------------------------------
@pytest.mark.slow  # tens of seconds: the slow tier (.ci/run runs it)
def test_tiny_run_learns_and_logs_every_tag(tmp_path, tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = run_train(tmp_path, [*tiny, "algo.total_steps=120", "algo.lr=3e-3",
                               "algo.warmup_steps=10", "algo.sample_every=100"])
    m = res["metrics"]
    ea = EventAccumulator(str(tmp_path / "run")).Reload()
    losses = [e.value for e in ea.Scalars("losses/noise_mse")]
    # the UNet's output layer starts at zero: eps_hat = 0, so the first MSE is about 1
    assert len(losses) == 12 and losses[0] > 0.7 and losses[-1] < 0.5, losses
    for tag in ("charts/images_per_s", "eval/fid", "eval/fid_floor", "eval/confident_fraction",
                "eval/class_coverage", "eval/fid_samples"):
        assert tag in m, tag
    assert m["eval/fid_samples"]["last"] == 64 and res["objective"] == m["eval/fid"]["last"]
    assert (tmp_path / "run" / "samples.png").is_file()
    assert (tmp_path / "run" / "denoising.png").is_file()
    assert [e.step for e in ea.Images("diffusion/samples")] == [100, 120]
    assert ea.Images("diffusion/denoising")[0].width == 4 * 9 + 1  # x_T .. x_0 in 4 columns


def test_resume_continues_exactly(tmp_path, monkeypatch, tiny):
    args = [*tiny, "deterministic=true", "algo.total_steps=30", "algo.sample_every=20",
            "algo.eval_samples=16"]
    a = run_train(tmp_path, args, "a")
    # as if Ctrl-C came at step 25: after the sample grid at 20, before the end
    b = interrupt_and_resume(tmp_path, monkeypatch, args, 25)
    for r in (a, b):
        r["metrics"].pop("charts/images_per_s")
        r["metrics"].pop("eval/sampling_s_per_image")
    assert b["metrics"] == a["metrics"]
    assert b["steps"] == 30


@pytest.mark.slow  # tens of seconds of subprocesses; .ci/run runs the slow tier
def test_ctrl_c_during_the_final_evaluation_stops_at_once_and_resumes_into_it(
        tmp_path, monkeypatch, tiny):
    """The checkpoint is saved before the final evaluation; Ctrl-C in its sampling stops
    within a denoising step, and the resume runs only the evaluation."""
    import rlrun.algos.ddpm as ddpm
    from rlrun.train import Interrupted, train

    args = [*tiny, "deterministic=true", "algo.total_steps=20", "algo.eval_samples=16"]
    a = run_train(tmp_path, args, "a")
    real_sample, calls = ddpm.sample, []

    def sample(*a, on_step=None, **k):
        calls.append(on_step)
        if on_step is not None and len(calls) == 1:  # Ctrl-C as the final grid starts
            on_step.__self__.stop_requested = True
        return real_sample(*a, on_step=on_step, **k)

    monkeypatch.setattr(ddpm, "sample", sample)
    with pytest.raises(Interrupted) as e:
        run_train(tmp_path, args, "b")
    assert e.value.resumable and len(calls) == 1
    assert read_results(tmp_path / "b")["status"] == "interrupted"
    assert not (tmp_path / "b" / "samples.png").exists()  # it stopped inside the sampling
    monkeypatch.setattr(ddpm, "sample", real_sample)
    b = train(compose_cfg([f"resume={tmp_path / 'b'}"]))
    for r in (a, b):
        r["metrics"].pop("charts/images_per_s")
        r["metrics"].pop("eval/sampling_s_per_image")
    assert b["status"] == "completed" and b["metrics"] == a["metrics"]


# ---- errors --------------------------------------------------------------------------------------
def images(**settings) -> ImageDataConfig:
    """An image env's settings, as `env=...` would give them."""
    return ImageDataConfig(name=settings.get("dataset", "digits"), kind="images", **settings)


def _idx(path, arr: np.ndarray, magic_type: int = 0x08, truncate: int = 0, gz: bool = False):
    data = bytes([0, 0, magic_type, arr.ndim]) + b"".join(struct.pack(">I", n) for n in arr.shape)
    data += arr.astype(np.uint8).tobytes()
    data = data[:len(data) - truncate]
    path.write_bytes(gzip.compress(data) if gz else data)


def test_idx_files_load_gzipped_and_padded(tmp_path):
    from rlrun.data.images import load_images

    rng = np.random.default_rng(0)
    _idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28)), gz=True)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(5))
    d = load_images(images(dataset="mnist", path=str(tmp_path), size=32, fit="pad"))
    assert d.images.shape == (5, 1, 32, 32) and d.n_classes == 5
    assert d.images[:, :, :2].eq(-1).all() and d.images.max() <= 1


def test_data_errors_say_what_is_expected(tmp_path):
    """Found before a run dir is made (preflight reads the files), except an image that
    cannot be decoded: the folder's layout is checked up front, its images by the run."""
    with pytest.raises(ConfigError, match="path is required for mnist.*train-images-idx3-ubyte"):
        run_train(tmp_path, ["algo=ddpm", "env=mnist"], "a")
    with pytest.raises(DataError, match="no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"):
        run_train(tmp_path, ["algo=ddpm", "env=fashion_mnist", f"env.path={tmp_path}"], "b")
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 4, 4)), magic_type=0x0D)
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        run_train(tmp_path, ["algo=ddpm", "env=mnist", f"env.path={tmp_path}"], "c")
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 4, 4)), truncate=3)
    with pytest.raises(DataError, match="truncated or corrupt"):
        run_train(tmp_path, ["algo=ddpm", "env=mnist", f"env.path={tmp_path}"], "d")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x1f\x8b junk")
    (tmp_path / "train-images-idx3-ubyte").rename(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="cannot read it"):
        run_train(tmp_path, ["algo=ddpm", "env=mnist", f"env.path={tmp_path}"], "e")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no images"):
        run_train(tmp_path, ["algo=ddpm", "env=image_folder", f"env.path={empty}"], "f")
    (empty / "bad.png").write_text("not a png")
    with pytest.raises(DataError, match="bad.png: not a readable image"):
        run_train(tmp_path, ["algo=ddpm", "env=image_folder", f"env.path={empty}"], "g")
    with pytest.raises(DataError, match="is not a folder"):
        run_train(tmp_path, ["algo=ddpm", "env=image_folder", f"env.path={tmp_path / 'nope'}"])
    assert sorted(p.name for p in tmp_path.iterdir() if (p / ".hydra").exists()) == ["g"]


def test_image_folder_classes_give_labels_and_no_labels_means_no_fid(tmp_path, tiny):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    from rlrun.data.images import load_images

    d = load_images(images(dataset="image_folder", path=str(tmp_path / "imgs"), size=8,
                           channels=3))
    assert d.images.shape == (12, 3, 8, 8) and d.labels.tolist() == [0] * 6 + [1] * 6
    flat = tmp_path / "imgs" / "a"
    with pytest.raises(ConfigError, match="no class labels.*algo.eval_samples=0"):
        run_train(tmp_path, [*tiny, "env=image_folder", f"env.path={flat}", "env.size=8",
                             "algo.total_steps=2", "algo.sample_every=0"])


def test_pairing_errors_and_one_line_cli_errors(tmp_path):
    with pytest.raises(PairingError, match="algo=ddpm needs an image data set"):
        run_train(tmp_path, ["algo=ddpm", "env=CartPole-v1"])
    with pytest.raises(PairingError, match="try algo=ddpm"):
        run_train(tmp_path, ["algo=ucb", "env=digits"])
    p = rlrun_cli(["algo=ddpm", "env=mnist", f"env.path={tmp_path}"], tmp_path)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln]
    assert p.returncode == 2 and len(lines) == 1 and "train-images-idx3-ubyte" in lines[0], \
        p.stderr
    with pytest.raises(ConfigError, match="sampler"):
        run_train(tmp_path, ["algo=ddpm", "algo.sampler=euler"], "a")
    with pytest.raises(ConfigError, match="use network=unet"):
        run_train(tmp_path, ["algo=ddpm", "network=mlp"], "b")
