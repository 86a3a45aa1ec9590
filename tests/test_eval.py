"""`rlrun-eval RUN_DIR`: replay a finished run from its checkpoint (docs/eval.md).

The strong check: with its defaults, rlrun-eval plays the run's own evaluation episodes (same
seeds, same policy), so its mean return equals the run's last `eval/return` exactly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from rlrun.core.errors import CheckpointError, ConfigError, DeviceError
from rlrun.eval import evaluate, main, parse_args

from .conftest import read_results, run_train

ROOT = Path(__file__).resolve().parent.parent
FAST = ["threads=1", "checkpoint_every_s=0", "algo.eval_episodes=3"]
# tiny runs of each deep RL algorithm: a few hundred steps, one evaluation at the end
RUNS = {
    "sac": ["algo=sac", "algo.total_steps=300", "algo.learning_starts=200",
            "algo.batch_size=16", "algo.eval_every=0", "network.hidden_sizes=[16]"],
    "ppo": ["algo=ppo", "algo.total_steps=512", "algo.num_steps=64", "env.num_envs=4",
            "algo.eval_every=0"],
    "ppo_obs_norm": ["algo=ppo", "env=Pendulum-v1", "algo.normalize_obs=true",
                     "algo.total_steps=512", "algo.num_steps=128", "env.num_envs=2",
                     "algo.eval_every=0", "network.hidden_sizes=[16]"],
    # (one gradient step per phase: the tuned CartPole-v1 preset's 128 would be 6400 here)
    "dqn": ["algo=dqn", "algo.total_steps=400", "algo.learning_starts=200",
            "algo.train_frequency=4", "algo.gradient_steps=1", "algo.batch_size=16",
            "algo.eval_every=0", "network.hidden_sizes=[16]"],
    "dqn_eval_epsilon": ["algo=dqn", "algo.total_steps=400", "algo.learning_starts=200",
                         "algo.train_frequency=4", "algo.gradient_steps=1", "algo.batch_size=16",
                         "algo.eval_every=0", "algo.eval_epsilon=0.3",
                         "network.hidden_sizes=[16]"],
    "td3": ["algo=td3", "algo.total_steps=300", "algo.learning_starts=200",
            "algo.batch_size=16", "algo.eval_every=0", "network.hidden_sizes=[16]"],
    "a2c": ["algo=a2c", "algo.total_steps=400", "algo.eval_every=0"],
    "a2c_shared_continuous": ["algo=a2c", "env=Pendulum-v1", "algo.shared=true",
                              "algo.total_steps=400", "algo.eval_every=0",
                              "network.hidden_sizes=[16]"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train each tiny run once per module, on first use."""
    root, done = tmp_path_factory.mktemp("runs"), {}

    def get(name: str) -> Path:
        if name not in done:
            run_train(root, [*FAST, *RUNS[name]], name)
            done[name] = root / name
        return done[name]

    return get


@pytest.mark.parametrize("name", list(RUNS))
def test_replays_the_runs_last_evaluation_exactly(trained, name, capsys):
    run = trained(name)
    res = read_results(run)
    rec = evaluate(run)
    last = res["metrics"]["eval/return"]["last"]
    assert rec["return_mean"] == last  # same seeds, same policy: the same episodes
    assert rec["length_mean"] == res["metrics"]["eval/length"]["last"]
    assert len(rec["episodes"]) == 3 and rec["checkpoint_step"] == res["steps"]
    assert [e["seed"] for e in rec["episodes"]] == [10_000, 10_001, 10_002]
    assert rec["return_std"] == pytest.approx(np.std([e["return"] for e in rec["episodes"]]))
    assert json.loads((run / "eval.json").read_text()) == rec
    out = capsys.readouterr().out
    assert f"return {last:.2f} +/- " in out and "over 3 deterministic episodes" in out


def test_options_episodes_sampling_and_seed(trained):
    run = trained("sac")
    rec = evaluate(run, {"episodes": 2, "deterministic": False, "seed": 7})
    assert len(rec["episodes"]) == 2 and [e["seed"] for e in rec["episodes"]] == [10_007, 10_008]
    assert rec["settings"] == {"seed": 7, "device": "cpu", "episodes": 2,
                               "deterministic": False, "video": False}
    again = evaluate(run, {"episodes": 2, "deterministic": False, "seed": 7})
    assert again["episodes"] == rec["episodes"]  # sampling follows seed=
    greedy = evaluate(run, {"episodes": 2, "seed": 7})
    assert greedy["episodes"] != rec["episodes"]  # the mean action is not a sample
    for name in ("ppo", "dqn", "td3", "a2c"):  # every hook can sample
        assert len(evaluate(trained(name), {"episodes": 1, "deterministic": False})
                   ["episodes"]) == 1


def test_reads_the_run_dir_and_writes_only_eval_json(trained, tmp_path):
    run = trained("ppo")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*")
              if p.is_file() and p.name not in ("eval.json", ".rlrun.lock")}
    # a live process holding the run's lock does not block it (it takes no lock)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from rlrun.core import runlock;"
         f" runlock.acquire({str(run)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert holder.stdout.readline().strip() == "held"
        evaluate(run, {"episodes": 1})
    finally:
        holder.communicate("", timeout=30)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*")
             if p.is_file() and p.name not in ("eval.json", ".rlrun.lock")}
    assert after == before  # no event file, results.json or checkpoint touched


def test_video_writes_a_gif_of_the_first_episode(trained):
    run = trained("ppo")
    rec = evaluate(run, {"video": True, "episodes": 1})
    gif = run / "eval_video.gif"
    assert rec["video"] == "eval_video.gif" and gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    from PIL import Image

    with Image.open(gif) as im:
        # the reset frame and one per step (Pillow merges identical neighbours)
        assert 1 < im.n_frames <= rec["episodes"][0]["length"] + 1 and im.size == (600, 400)


def _headless_env() -> dict[str, str]:
    """This process's environment as a headless machine has it: no display, no session."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "SDL_VIDEODRIVER", "SDL_AUDIODRIVER", "DISPLAY",
                        "WAYLAND_DISPLAY")}
    return {**env, "PYTHONPATH": str(ROOT / "src")}


def _sdl_warns_here(tmp_path: Path) -> None:
    """The control: a plain Gymnasium render prints SDL's warning on this machine (else the
    tests below could not fail, and are skipped)."""
    control = subprocess.run(
        [sys.executable, "-c", "import gymnasium as g; e = g.make('CartPole-v1',"
         " render_mode='rgb_array'); e.reset(seed=0); e.render(); e.close()"],
        cwd=tmp_path, env=_headless_env(), capture_output=True, text=True, timeout=120)
    if "XDG_RUNTIME_DIR" not in control.stderr:
        pytest.skip(f"this machine's pygame prints no such warning ({control.stderr[-200:]!r})")


def test_rendering_frames_on_a_headless_machine_prints_no_sdl_warning(tmp_path):
    """Where rlrun turns rendering on (make_env(render=True), for logger.video and rlrun-eval's
    video=true), in a fresh process as pygame warns once per process: SDL would print
    `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`; rlrun renders with
    SDL's dummy video driver, and the frame is the same."""
    _sdl_warns_here(tmp_path)
    code = ("from types import SimpleNamespace as N; from rlrun.envs.gym import make_env;"
            " e = make_env(N(id='CartPole-v1', kwargs={}, max_episode_steps=None), render=True);"
            " e.reset(seed=0); f = e.render(); e.close(); print(f.shape, f.dtype, f.min())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_headless_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(400,", "600,", "3)", "uint8", "0"]  # cart and pole drawn
    assert out.stderr == ""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("rlrun_reinforce") is None,
                    reason="the example plugin is not installed (pip install -e"
                    " examples/rlrun-reinforce)")
def test_rlrun_eval_video_on_a_headless_machine_prints_no_sdl_warning(tmp_path):
    """The command itself, `rlrun-eval RUN video=true`, on a CartPole run of the example
    plugin's REINFORCE (the quickest pygame-rendered policy)."""
    _sdl_warns_here(tmp_path)
    run_train(tmp_path, ["algo=reinforce", "env=CartPole-v1", "env.num_envs=2", "threads=1",
                         "algo.total_steps=100", "algo.eval_every=0", "algo.eval_episodes=1"])
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-c", "import sys; from rlrun.eval import main;"
                          " sys.argv[0] = 'rlrun-eval'; sys.exit(main())", str(run),
                          "video=true", "episodes=1"], cwd=tmp_path, env=_headless_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (run / "eval_video.gif").is_file()
    assert "XDG_RUNTIME_DIR" not in out.stderr and "SDL" not in out.stderr, out.stderr


def test_video_without_pillow_is_one_line(trained, monkeypatch):
    monkeypatch.setattr("rlrun.core.logger.missing_video_modules", lambda: ["pillow"])
    with pytest.raises(ConfigError, match=r"^video=true needs the video extra \(pillow not"):
        evaluate(trained("ppo"), {"video": True})


def test_video_of_an_env_that_cannot_render_is_one_line(trained, monkeypatch):
    import rlrun.envs.gym as gym_envs

    real = gym_envs.make_env

    def no_frames(cfg, render=False):
        env = real(cfg)
        env.metadata = {**env.metadata, "render_modes": []}
        return env

    monkeypatch.setattr(gym_envs, "make_env", no_frames)
    with pytest.raises(ConfigError, match=r"^video=true, but env CartPole-v1 cannot render"
                                          r" rgb_array frames: set video=false$"):
        evaluate(trained("ppo"), {"video": True})


def test_the_console_script(trained, tmp_path):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rlrun-eval"] == "rlrun.eval:main"
    run = trained("dqn")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # what pip's generated `rlrun-eval` script runs
    cmd = [sys.executable, "-c", "import sys; from rlrun.eval import main;"
           " sys.argv[0] = 'rlrun-eval'; sys.exit(main())"]
    out = subprocess.run([*cmd, str(run), "episodes=2"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "over 2 deterministic episodes" in out.stdout
    assert len(json.loads((run / "eval.json").read_text())["episodes"]) == 2
    bad = subprocess.run([*cmd, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("rlrun-eval: error: ") and "not a run dir" in bad.stderr
    helped = subprocess.run([*cmd, "--help"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0 and "usage: rlrun-eval RUN_DIR" in helped.stdout
    for key in ("episodes=", "deterministic=", "video=", "prompt=", "chars=", "samples=",
                "sampler=", "steps=", "seed="):
        assert key in helped.stdout


# ---- LM and DDPM -------------------------------------------------------------------------------
LM = ["algo=lm", "threads=1", "checkpoint_every_s=0", "network.d_model=32",
      "network.n_layers=1", "network.n_heads=2", "network.block_size=16", "network.d_ff=64",
      "env.max_chars=20000", "algo.batch_size=8", "algo.eval_batches=2", "algo.total_steps=20",
      "algo.sample_chars=40", "algo.attention_stats=false"]


def test_lm_generates_the_runs_own_sample_and_more(tmp_path, capsys):
    run_train(tmp_path, LM)
    run = tmp_path / "run"
    rec = evaluate(run)
    assert rec["mode"] == "text" and len(rec["text"]) == 40
    assert rec["settings"] == {"seed": 0, "device": "cpu", "prompt": "The ", "chars": 40,
                               "temperature": 0.8, "cfg": 1.0, "negative_prompt": ""}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload()
    logged = ea.Tensors("eval/sample/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert logged == "    " + ("The " + rec["text"]).replace("\n", "\n    ")  # the same text
    assert "The " + rec["text"] in capsys.readouterr().out
    long = evaluate(run, {"prompt": "def ", "chars": 50, "temperature": 0.5, "seed": 3})
    assert len(long["text"]) == 50 and json.loads((run / "eval.json").read_text()) == long
    with pytest.raises(ConfigError, match="prompt= holds characters the model never saw"):
        evaluate(run, {"prompt": "\u2603"})
    with pytest.raises(ConfigError, match=r"^episodes= is for playing episodes .*algo=lm is"
                                          r" evaluated by text generation"):
        evaluate(run, {"episodes": 3})


def test_ddpm_writes_the_runs_own_grid_and_others(tmp_path):
    from PIL import Image

    run_train(tmp_path, ["algo=ddpm", "threads=1", "checkpoint_every_s=0", "algo.timesteps=20",
                         "algo.batch_size=16", "algo.total_steps=6", "algo.log_every=3",
                         "algo.sample_every=0", "algo.grid_samples=4", "algo.strip_rows=1",
                         "algo.strip_columns=2", "algo.eval_samples=0", "algo.sampler=ddim",
                         "algo.sample_steps=4", "network.ch=8", "network.groups=4",
                         "network.ch_mult=[1]", "network.num_res_blocks=1",
                         "network.attn_resolutions=[]"])
    run = tmp_path / "run"
    rec = evaluate(run)
    assert rec["settings"] == {"seed": 0, "device": "cpu", "samples": 4, "sampler": "ddim",
                               "steps": 4}
    mine, theirs = (np.asarray(Image.open(run / f)) for f in ("eval_samples.png",
                                                              "samples.png"))
    assert np.array_equal(mine, theirs)  # the EMA model and the noise of the run's last grid
    rec = evaluate(run, {"samples": 9, "steps": 2, "seed": 1})
    assert np.asarray(Image.open(run / "eval_samples.png")).shape == \
        ((3 * 8 + 4) * 4,) * 2  # 3 x 3 digits of 8 px, 1 px pads, scaled x4
    evaluate(run, {"samples": 1, "sampler": "ddpm"})
    with pytest.raises(ConfigError, match=r"^steps= sets the number of DDIM steps"):
        evaluate(run, {"sampler": "ddpm", "steps": 3})


# ---- bad input: one line, exit 2 -------------------------------------------------------------
def _fails(argv: list[str], capsys) -> str:
    capsys.readouterr()  # what training printed before (log lines, stray logging errors)
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("rlrun-eval: error: ")
    return err


@pytest.mark.parametrize("args, message", [
    ([], "name a run dir"),
    (["--verbose"], "unknown flag --verbose"),
    (["RUN", "episode=3"], "episode= is not an option of rlrun-eval; did you mean episodes?"),
    (["RUN", "episodes=abc"], "episodes='abc' must be an integer >= 1"),
    (["RUN", "episodes=0"], "episodes='0' must be an integer >= 1"),
    (["RUN", "deterministic=maybe"], "deterministic='maybe' must be true or false"),
    (["RUN", "seed=-1"], "seed='-1' must be an integer >= 0"),
    (["RUN", "temperature=nan"], "temperature='nan' must be a number > 0"),
    (["RUN", "sampler=euler"], "sampler='euler' must be ddpm or ddim"),
    (["RUN", "cfg=-1"], "cfg='-1' must be a number >= 0"),
    (["RUN", "guidance=-0.5"], "guidance='-0.5' must be a number >= 0"),
    (["RUN", "class=-1"], "class='-1' must be all or a class index 0, 1, ..."),
    (["RUN", "episodes=2", "episodes=3"], "episodes= is given twice"),
    (["RUN", "10"], "'10': options are key=value"),
])
def test_bad_options(args, message, capsys):
    assert message in _fails(args, capsys)


def test_bad_run_dirs(trained, tmp_path, capsys):
    assert "no such directory" in _fails([str(tmp_path / "nope")], capsys)
    assert "is not a run dir (no .hydra/config.yaml)" in _fails([str(tmp_path)], capsys)
    run = trained("ppo")
    err = _fails([str(run), "prompt=hi"], capsys)
    assert "prompt= is for text generation (algo=lm); algo=ppo is evaluated by playing" in err

    bare = tmp_path / "bare"  # stopped before its first checkpoint
    shutil.copytree(run / ".hydra", bare / ".hydra")
    assert "no checkpoint (checkpoints/last.pt)" in _fails([str(bare)], capsys)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(run, corrupt)
    (corrupt / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    assert "is unreadable" in _fails([str(corrupt)], capsys)

    other = tmp_path / "other"  # its config says one network, its checkpoint holds another
    shutil.copytree(run, other)
    cfg = (other / ".hydra" / "config.yaml").read_text()
    (other / ".hydra" / "config.yaml").write_text(cfg.replace("hidden_sizes:\n",
                                                              "hidden_sizes:\n  - 8\n", 1))
    err = _fails([str(other)], capsys)
    assert "the checkpoint does not fit this version of rlrun or the run's config" in err

    evil = tmp_path / "evil"  # a run dir from elsewhere may not choose what to import
    shutil.copytree(run, evil)
    (evil / "eval.json").unlink(missing_ok=True)
    cfg = (evil / ".hydra" / "config.yaml").read_text()
    (evil / ".hydra" / "config.yaml").write_text(cfg.replace("loop: rlrun.algos.ppo.run",
                                                             "loop: os.system"))
    assert "algo.loop='os.system' is not code that rlrun's configs name" in \
        _fails([str(evil)], capsys)
    assert not (evil / "eval.json").exists()


def test_a_gpu_run_replays_on_the_cpu(trained, tmp_path, monkeypatch):
    import torch

    gpu = tmp_path / "gpu"  # as if trained with device=cuda
    shutil.copytree(trained("a2c"), gpu)
    cfg = (gpu / ".hydra" / "config.yaml").read_text()
    assert "device:\n  type: auto" in cfg
    (gpu / ".hydra" / "config.yaml").write_text(cfg.replace("device:\n  type: auto",
                                                            "device:\n  type: cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"^the run's own device: device=cuda requested but"
                                          r" .*use device=cpu"):
        evaluate(gpu)
    assert evaluate(gpu, {"device": "cpu"})["return_mean"] == \
        read_results(gpu)["metrics"]["eval/return"]["last"]


def test_an_algorithm_with_nothing_to_replay(tmp_path, capsys):
    run_train(tmp_path, ["algo=ucb", "env.num_runs=20", "env.steps=50"])
    err = _fails([str(tmp_path / "run")], capsys)
    assert err == ("rlrun-eval: error: algo=ucb has no policy to replay; its results are in"
                   " results.json\n")


def test_a_hook_that_forgets_to_resume_is_named(trained, monkeypatch):
    import rlrun.algos.a2c as a2c

    monkeypatch.setattr(a2c, "load_policy", lambda ctx, env, det: (lambda o: o))
    with pytest.raises(ConfigError, match="did not load the checkpoint: a hook must call"
                                          r" ctx.resume\(\)"):
        evaluate(trained("a2c"))


def test_parse_args_types():
    run, opts = parse_args(["R", "episodes=5", "deterministic=false", "video=True", "seed=3",
                            "temperature=0.5", "sampler=ddim", "device=cpu"])
    assert run == Path("R") and opts == {"episodes": 5, "deterministic": False, "video": True,
                                         "seed": 3, "temperature": 0.5, "sampler": "ddim",
                                         "device": "cpu"}
    with pytest.raises(CheckpointError):
        evaluate(Path("/nonexistent/run"))
