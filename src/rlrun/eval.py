"""`rlrun-eval RUN_DIR [key=value ...]`: evaluate or replay a finished run, like rl-zoo's
`enjoy` (docs/eval.md).

It reads the run's saved config (`.hydra/config.yaml`, held to the same rule as `resume=`: it
may only name code that rlrun's configs name) and its last checkpoint, and asks the run's
algorithm module (the module of `algo.loop`) to rebuild what it needs through one of four
hooks, each of which builds its networks as the loop does, `ctx.track`s them under the
loop's names and calls `ctx.resume()`:

- `load_policy(ctx, env, deterministic) -> policy(obs_batch) -> action_batch`: deep RL
  (ours and plugins'); rlrun-eval plays `episodes=` episodes on `env`, seeded as the run's
  own evaluations (`seed + 10_000 + i`), so by default it reproduces the run's last
  `eval/return`;
- `load_text_generator(ctx) -> generate(prompt, chars, temperature) -> text` (algo=lm; with
  `cfg=`/`negative_prompt=`, it is also called with those keywords);
- `load_image_sampler(ctx) -> sample(n, sampler, steps) -> images in [-1, 1]` (algo=ddpm; a
  class-conditional model's sampler has an `n_classes` attribute and takes `labels=` and
  `guidance=`);
- `load_text_classifier(ctx) -> classify(texts) -> labels` (algo=text_classifier, `text=`).

The run dir is only read, except for what rlrun-eval writes: `eval.json` (atomically) and
`eval_video.gif` / `eval_samples.png` when asked. No event files, no results.json, no
checkpoint, and no lock: a live run is never blocked, and its last checkpoint (written by
rename, so always whole) can be evaluated while it trains.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlrun.core.errors import CheckpointError, ConfigError, DeviceError, RlrunError
from rlrun.core.run import RunContext

PROG = "rlrun-eval"
# hook name -> what it does (the "mode" of a run)
HOOKS = {"load_policy": "policy", "load_text_generator": "text",
         "load_image_sampler": "images", "load_text_classifier": "labels"}
MODE_WHAT = {"policy": "playing episodes (deep RL)", "text": "text generation (algo=lm)",
             "images": "image sampling (algo=ddpm)",
             "labels": "text classification (algo=text_classifier)"}
EVAL_FILE, VIDEO_FILE, SAMPLES_FILE = "eval.json", "eval_video.gif", "eval_samples.png"


@dataclass(frozen=True)
class Option:
    kind: type
    mode: str | None  # None: every mode
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None  # smallest allowed value (ints and floats)
    positive: bool = False  # > 0 (floats)
    repeat: bool = False  # may be given more than once (a list of values)


OPTIONS = {
    "episodes": Option(int, "policy", "episodes to play (default: the run's algo.eval_episodes,"
                       " else 10)", low=1),
    "deterministic": Option(bool, "policy", "true (default): the run's evaluation policy (the"
                            " mean or greedy action); false: sample from the policy"),
    "video": Option(bool, "policy", f"true: write the first episode as {VIDEO_FILE} in the run"
                    " dir (the env must render rgb_array; pip install 'rlrun[video]')"),
    "prompt": Option(str, "text", "the text to continue (default: the run's"
                     " algo.sample_prompt)"),
    "chars": Option(int, "text", "characters to generate (tokens, for a run on token shards;"
                    " default: the run's algo.sample_chars, else 200)", low=1),
    "temperature": Option(float, "text", "sampling temperature (default: the run's"
                          " algo.sample_temperature)", positive=True),
    "cfg": Option(float, "text", "classifier-free guidance scale gamma: log p(x|uncond) + gamma"
                  " (log p(x|prompt) - log p(x|uncond)), transformers' guidance_scale; 1: plain"
                  " decoding (default: the run's algo.sample_cfg, else 1)", low=0),
    "negative_prompt": Option(str, "text", "with cfg != 1: the text the unconditional branch"
                              " starts from (default: the run's algo.sample_negative_prompt;"
                              " empty: the prompt's last character alone)"),
    "samples": Option(int, "images", f"images in the grid written to {SAMPLES_FILE} (default:"
                      " the run's algo.grid_samples)", low=1),
    "sampler": Option(str, "images", "ddpm (all T steps) or ddim (default: the run's"
                      " algo.sampler)", choices=("ddpm", "ddim")),
    "steps": Option(int, "images", "DDIM steps, with sampler=ddim (default: the run's"
                    " algo.sample_steps)", low=1),
    "class": Option(str, "images", "a class-conditional run (algo.conditional=true): a class"
                    " index 0..K-1 fills the grid with that class; all: one row per class"
                    " (the default, as the run's own grids)"),
    "guidance": Option(float, "images", "a class-conditional run: guidance weight w, eps ="
                       " (1 + w) eps(x, c) - w eps(x) (Ho & Salimans; diffusers'"
                       " guidance_scale is 1 + w; default: the run's algo.guidance)", low=0),
    "text": Option(str, "labels", "the text to classify (required; give text= again for"
                   " more texts, one label each)", repeat=True),
    "explain": Option(bool, "labels", "true: which tokens drove the prediction (integrated"
                      " gradients, Captum; one text; writes explain.json and explain.html;"
                      " pip install 'rlrun[explain]')"),
    "seed": Option(int, None, "default: the run's seed, which replays the run's own last"
                   " evaluation (episodes are seeded seed + 10000 + i)", low=0),
    "device": Option(str, None, "cpu, cuda or auto (default: the run's device)",
                     choices=("cpu", "cuda", "auto")),
    "env.id": Option(str, None, "the run's own env.id, repeated to trust the module of a"
                     " `module:EnvId` id that no installed plugin or config names (a run dir"
                     " from elsewhere may not choose what to import)"),
}

HELP = f"""usage: {PROG} RUN_DIR [key=value ...]

Evaluate or replay a finished (or running) rlrun run from its last checkpoint, like
rl-zoo's enjoy. Deep RL runs play episodes and print the mean and std of the return; LM
runs generate text; DDPM runs write a sample grid. Results go to RUN_DIR/{EVAL_FILE}
(every episode's return and length, or the text, plus the settings used).

options (key=value), by what the run's algorithm does:
""" + "\n".join(
    f"  {MODE_WHAT.get(mode, 'all runs')}:\n" + "\n".join(
        textwrap.fill(o.help, 92, initial_indent=f"    {k + '=':<15}", subsequent_indent=" " * 19)
        for k, o in OPTIONS.items() if o.mode == mode)
    for mode in (*MODE_WHAT, None)) + f"""

examples:
  {PROG} outputs/ppo/CartPole-v1/2026-12-01_10-00-00
  {PROG} RUN episodes=20 deterministic=false video=true
  {PROG} LM_RUN prompt="The " chars=300 temperature=0.7
  {PROG} LM_RUN prompt=$'[json]\\n' cfg=1.5 negative_prompt=$'[email]\\n'   # bash's $'..'
  {PROG} DDPM_RUN samples=16 sampler=ddim steps=50
  {PROG} CONDITIONAL_DDPM_RUN class=3 guidance=2 samples=64
  {PROG} CLASSIFIER_RUN text="Return the value of the named header field."
  {PROG} CLASSIFIER_RUN text="Send an e-mail message." explain=true

A plugin algorithm supports {PROG} by defining a hook in its loop's module: docs/eval.md.
Bad input is one line on stderr and exit code 2."""


def parse_args(argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """RUN_DIR and the typed `key=value` options; a bad one is a one-line ConfigError."""
    if not argv:
        raise ConfigError(f"name a run dir: {PROG} RUN_DIR [key=value ...] (see {PROG} --help)")
    run_dir, *rest = argv
    if run_dir.startswith("-"):
        raise ConfigError(f"unknown flag {run_dir}: {PROG} RUN_DIR [key=value ...] (--help)")
    from rlrun.core.config import did_you_mean

    opts: dict[str, Any] = {}
    for arg in rest:
        key, eq, value = arg.partition("=")
        if not eq or not key:
            raise ConfigError(f"{arg!r}: options are key=value, e.g. episodes=10 (see --help)")
        if key not in OPTIONS:
            raise ConfigError(f"{key}= is not an option of {PROG}"
                              f"{did_you_mean(key, list(OPTIONS))}")
        if key in opts and not OPTIONS[key].repeat:
            raise ConfigError(f"{key}= is given twice")
        typed = _typed(key, value, OPTIONS[key])
        if key in opts:  # a repeatable option given again: the list of its values
            typed = [*(opts[key] if isinstance(opts[key], list) else [opts[key]]), typed]
        opts[key] = typed
    return Path(run_dir), opts


def _typed(key: str, value: str, opt: Option) -> Any:
    import math

    bad = ConfigError(f"{key}={value!r} must be " + {
        int: "an integer" + (f" >= {opt.low:g}" if opt.low is not None else ""),
        float: "a number" + (" > 0" if opt.positive else f" >= {opt.low:g}"
                             if opt.low is not None else ""), bool: "true or false",
        str: "all or a class index 0, 1, ..." if key == "class" else
        " or ".join(opt.choices) if opt.choices else "text"}[opt.kind])
    if opt.kind is bool:
        if value.lower() not in ("true", "false"):
            raise bad
        return value.lower() == "true"
    if opt.kind is int:
        try:
            out: Any = int(value)
        except ValueError:
            raise bad from None
        if opt.low is not None and out < opt.low or key == "seed" and out >= 2**32:
            raise bad
        return out
    if opt.kind is float:
        try:
            out = float(value)
        except ValueError:
            raise bad from None
        if not math.isfinite(out) or opt.positive and out <= 0 or \
                opt.low is not None and out < opt.low:
            raise bad
        return out
    if opt.choices and value not in opt.choices:
        raise bad
    if key == "class" and value != "all":
        if not value.isdigit():
            raise bad
        return int(value)
    return value


class ReadOnlyRunContext(RunContext):
    """The run context a hook receives in rlrun-eval: the run's typed configs, device and
    seed, `track` and `resume` as in training; it loads the checkpoint but writes nothing
    (no event files, results.json or checkpoint; no removal of a live run's half-written
    temp files) and takes no lock."""

    def __post_init__(self) -> None:
        from rlrun.core.checkpoint import load_checkpoint
        from rlrun.core.logger import Logger

        self._resume_state = load_checkpoint(self.checkpoint_path)
        if not isinstance(self._resume_state.get("loop"), dict):
            raise CheckpointError(f"checkpoint {self.checkpoint_path} holds no loop state")
        self.step = self._saved_step = int(self._resume_state.get("step", 0))
        self.logger = Logger(self.run_dir, self.logger_cfg)  # tensorboard=False: in memory
        self.resumed = False

    def resume(self) -> bool:
        self.resumed = super().resume()
        return self.resumed

    def tracked(self, name: str) -> Any:
        """What the hook tracked under `name` (the loop's name): for tools that need more
        than the hook's callable (rlrun-drift scores text with the LM's `model`)."""
        return self._tracked[name]

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{PROG} only reads a run: a hook may not save, tick or finish")

    save = tick = finish = write_results = start_progress = _read_only


def open_run(run_dir: str | Path, opts: dict[str, Any],
             modes: tuple[str, ...] | None = None, prog: str = PROG
             ) -> tuple[ReadOnlyRunContext, Callable, str, Any]:
    """(read-only context, hook, mode, saved config) of the run in `run_dir`, checked and
    ready for `load_hook`: what rlrun-eval and the tools beside it (rlrun-drift) read a run
    dir with. `modes`: the kinds of run the caller takes (default: any with a hook)."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such directory")
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run dir (no .hydra/config.yaml): name the"
                              " folder of one run, e.g. outputs/<algo>/<env>/<date>_<time>")

    from rlrun.core.config import import_object, register_resolvers
    from rlrun.core.device import resolve_device
    from rlrun.core.logger import LoggerConfig
    from rlrun.core.resume import read_run_config

    register_resolvers()
    from rlrun.schemas import register_all

    register_all()
    env_ids = (opts.pop("env.id"),) if "env.id" in opts else ()
    cfg = read_run_config(run_dir, str(run_dir), env_ids)
    if env_ids and env_ids[0] != cfg.env.get("id"):
        raise ConfigError(f"env.id={env_ids[0]}: {PROG} replays the run's own task"
                          f" ({cfg.env.get('id')}); env.id= only confirms it")
    loop = import_object(str(cfg.algo.get("loop")), "algo.loop")
    module = sys.modules[loop.__module__]
    name = str(cfg.algo.get("name"))
    mode, hook = next(((m, getattr(module, h)) for h, m in HOOKS.items()
                       if callable(getattr(module, h, None))), (None, None))
    if modes is not None and mode not in modes:
        raise ConfigError(f"{prog} reads {' and '.join(MODE_WHAT[m] for m in modes)} runs;"
                          f" algo={name} is " + (f"evaluated by {MODE_WHAT[mode]}" if mode
                                                 else "neither"))
    if hook is None:
        hint = "" if module.__name__.startswith("rlrun.") else (
            f" ({module.__name__} defines no {', '.join(HOOKS)} hook: docs/eval.md)")
        raise ConfigError(f"algo={name} has no policy to replay{hint}; its results are in"
                          " results.json")
    for key in opts:
        if OPTIONS[key].mode not in (None, mode):
            takes = ", ".join(f"{k}=" for k, o in OPTIONS.items() if o.mode in (None, mode))
            raise ConfigError(f"{key}= is for {MODE_WHAT[OPTIONS[key].mode]}; algo={name} is"
                              f" evaluated by {MODE_WHAT[mode]} and takes {takes}")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint (checkpoints/last.pt): the run has not"
                              " saved one (it stopped before its first, or is still starting),"
                              " so there is nothing to evaluate")
    from rlrun.preflight import preflight

    plan = preflight(cfg, data=False, device=False)  # a run's checks, on its own config
    algo, env = plan.algo, plan.env
    if "device" in opts:
        device = resolve_device(opts["device"])
    else:
        try:
            device = resolve_device(str(cfg.device.type), cfg.device.get("index"))
        except DeviceError as e:  # trained on a GPU, replayed where there is none
            raise DeviceError(f"the run's own device: {e}") from None
    from rlrun.core.threads import set_threads

    set_threads(cfg.get("threads", "auto"), plan.spec)  # as the run did (auto, N or null)
    seed = int(opts.get("seed", cfg.seed))
    ctx = ReadOnlyRunContext(
        run_dir=run_dir, algo=algo, env=env, algo_name=name, env_name=str(cfg.env.name),
        seed=seed, device=device, deterministic=bool(cfg.deterministic),
        logger_cfg=LoggerConfig(tensorboard=False, progress="none"), headline="",
        network=cfg.get("network"), resuming=True)
    return ctx, hook, mode, cfg


def evaluate(run_dir: str | Path, opts: dict[str, Any] | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate the run in `run_dir` with typed options (see OPTIONS); write and return the
    eval.json record. User errors are RlrunErrors."""
    from omegaconf import OmegaConf

    opts = dict(opts or {})
    ctx, hook, mode, cfg = open_run(run_dir, opts)
    run_dir, name, seed, device = ctx.run_dir, ctx.algo_name, ctx.seed, ctx.device
    rec: dict[str, Any] = {"algo": name, "env": ctx.env_name, "run_dir": str(run_dir),
                           "checkpoint_step": ctx.step, "mode": mode,
                           "settings": {"seed": seed, "device": device}}
    fps = int(OmegaConf.select(cfg, "logger.video_fps") or 30)
    if mode == "policy":
        _play(ctx, hook, opts, rec, fps, echo)
    elif mode == "text":
        _text(ctx, hook, opts, rec, echo)
    elif mode == "labels":
        _labels(ctx, hook, opts, rec, echo)
    else:
        _images(ctx, hook, opts, rec, echo)
    from rlrun.core.checkpoint import atomic_write_json

    atomic_write_json(run_dir / EVAL_FILE, rec)
    return rec


def load_hook(ctx: ReadOnlyRunContext, hook: Callable, *args: Any) -> Any:
    """Call the hook; a checkpoint that does not fit what it built is a one-line error."""
    try:
        out = hook(ctx, *args)
    except RlrunError:
        raise
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
        if not ctx.restoring:
            raise
        detail = " ".join(line.strip() for line in str(e).splitlines()[:2])[:240]
        raise CheckpointError(f"{ctx.run_dir}: the checkpoint does not fit this version of"
                              f" rlrun or the run's config ({type(e).__name__}: {detail})"
                              ) from None
    if not ctx.resumed:
        raise ConfigError(f"{hook.__module__}.{hook.__name__} did not load the checkpoint: a"
                          " hook must call ctx.resume() (docs/eval.md)")
    from rlrun.core.seeding import seed_everything

    seed_everything(ctx.seed, ctx.deterministic)  # sampling draws follow seed=, not the run
    return out


def _play(ctx: ReadOnlyRunContext, hook: Callable, opts: dict[str, Any], rec: dict[str, Any],
          fps: int, echo: Callable[[str], None]) -> None:
    import numpy as np

    from rlrun.core.logger import gif_bytes, missing_video_modules
    from rlrun.rl.evaluation import EVAL_SEED_OFFSET, Evaluator

    episodes = opts.get("episodes", getattr(ctx.algo, "eval_episodes", 10))
    deterministic, video = opts.get("deterministic", True), opts.get("video", False)
    if not getattr(ctx.env, "id", None):
        raise ConfigError(f"algo={ctx.algo_name} defines load_policy, but env={ctx.env_name}"
                          " is not a Gymnasium task to play it in")
    missing = missing_video_modules() if video else []
    if missing:
        raise ConfigError(f"video=true needs the video extra ({', '.join(missing)} not"
                          " installed): pip install 'rlrun[video]'")
    evaluator = Evaluator(ctx.env, ctx.seed, episodes, video, video_option="video")
    try:
        policy = load_hook(ctx, hook, evaluator.env, deterministic)
        returns, lengths, frames = evaluator.play(policy)
    finally:
        evaluator.close()
    first = ctx.seed + EVAL_SEED_OFFSET
    rec["settings"].update(episodes=episodes, deterministic=deterministic, video=video)
    rec.update(return_mean=float(np.mean(returns)), return_std=float(np.std(returns)),
               length_mean=float(np.mean(lengths)),
               episodes=[{"seed": first + i, "return": r, "length": n}
                         for i, (r, n) in enumerate(zip(returns, lengths, strict=True))])
    if frames:
        from rlrun.core.checkpoint import atomic_write_bytes

        atomic_write_bytes(ctx.run_dir / VIDEO_FILE, gif_bytes(np.stack(frames), fps))
        rec["video"] = VIDEO_FILE
    how = "deterministic" if deterministic else "sampled"
    echo(f"{ctx.algo_name} on {ctx.env_name} (checkpoint at step {ctx.step}): return"
         f" {rec['return_mean']:.2f} +/- {rec['return_std']:.2f} over {episodes} {how}"
         f" episodes, mean length {rec['length_mean']:.1f}")
    echo(f"wrote {ctx.run_dir / EVAL_FILE}" + (f" and {VIDEO_FILE}" if frames else ""))


def _text(ctx: ReadOnlyRunContext, hook: Callable, opts: dict[str, Any], rec: dict[str, Any],
          echo: Callable[[str], None]) -> None:
    prompt = opts.get("prompt", getattr(ctx.algo, "sample_prompt", ""))
    chars = opts.get("chars", getattr(ctx.algo, "sample_chars", 0) or 200)
    temperature = opts.get("temperature", getattr(ctx.algo, "sample_temperature", 1.0))
    cfg = opts.get("cfg", getattr(ctx.algo, "sample_cfg", 1.0))
    negative = opts.get("negative_prompt", getattr(ctx.algo, "sample_negative_prompt", ""))
    if "negative_prompt" in opts and cfg == 1:
        raise ConfigError(f"negative_prompt={negative!r} changes nothing at cfg=1 (plain"
                          " decoding): add a guidance scale, e.g. cfg=1.5")
    generate = load_hook(ctx, hook)
    if cfg == 1 and not negative:  # plain decoding: the hook's three arguments
        text = generate(prompt, chars, temperature)
    else:
        _takes(generate, ("cfg", "negative_prompt"), ctx.algo_name, "cfg=")
        text = generate(prompt, chars, temperature, cfg=cfg, negative_prompt=negative)
    rec["settings"].update(prompt=prompt, chars=chars, temperature=temperature, cfg=cfg,
                           negative_prompt=negative)
    rec["text"] = text
    echo(prompt + text)
    echo(f"wrote {ctx.run_dir / EVAL_FILE}")


def _takes(fn: Callable, names: tuple[str, ...], algo: str, option: str) -> None:
    """A hook's callable must take these keywords for `option` (a plugin's may not)."""
    import inspect

    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()) and \
            not all(n in params for n in names):
        raise ConfigError(f"{option} needs a hook whose callable takes"
                          f" {', '.join(n + '=' for n in names)}; algo={algo}'s does not")


def _labels(ctx: ReadOnlyRunContext, hook: Callable, opts: dict[str, Any],
            rec: dict[str, Any], echo: Callable[[str], None]) -> None:
    if "text" not in opts:
        raise ConfigError(f"algo={ctx.algo_name} classifies text: give text=\"...\"")
    texts = [opts["text"]] if isinstance(opts["text"], str) else list(opts["text"])
    if not all(str(t).strip() for t in texts):
        raise ConfigError(f"algo={ctx.algo_name} classifies text: give a non-empty"
                          " text=\"...\"")
    explain = opts.get("explain", False)
    if explain:
        from rlrun.explain import check_request, explain_and_write

        check_request(texts)  # one text, and Captum installed: before anything loads
    predict = load_hook(ctx, hook)
    labels = predict(texts)
    rec["settings"].update(text=opts["text"], explain=explain)
    if len(texts) == 1:
        rec["label"] = labels[0]
    else:
        rec["labels"] = labels
    for label in labels:
        echo(label)
    if explain:
        rec["explain"] = explain_and_write(predict, texts[0], ctx.run_dir, echo)
    echo(f"wrote {ctx.run_dir / EVAL_FILE}")


def _images(ctx: ReadOnlyRunContext, hook: Callable, opts: dict[str, Any],
            rec: dict[str, Any], echo: Callable[[str], None]) -> None:
    import importlib.util

    from rlrun.core.logger import image_grid

    if importlib.util.find_spec("PIL") is None:
        raise ConfigError(f"{SAMPLES_FILE} needs Pillow: pip install 'rlrun[diffusion]'")
    sampler = opts.get("sampler", getattr(ctx.algo, "sampler", "ddpm"))
    if sampler != "ddim" and "steps" in opts:
        raise ConfigError(f"steps= sets the number of DDIM steps, but sampler={sampler} runs"
                          " every step of the chain: add sampler=ddim")
    n = opts.get("samples", getattr(ctx.algo, "grid_samples", 64))
    steps = opts.get("steps", getattr(ctx.algo, "sample_steps", 50))
    conditional = bool(getattr(ctx.algo, "conditional", False))
    for key in ("class", "guidance"):
        if key in opts and not conditional:
            value = f"{opts[key]:g}" if isinstance(opts[key], float) else opts[key]
            raise ConfigError(f"{key}={value} asks a class-conditional model, and this"
                              f" run's is unconditional (algo.conditional=false"
                              f"{_unlabelled(ctx)}): train one with algo.conditional=true")
    sample = load_hook(ctx, hook)
    settings: dict[str, Any] = {}
    nrow = None
    if not conditional:
        x = sample(n, sampler, steps)
    else:
        import torch

        k = getattr(sample, "n_classes", None)
        if not k:
            raise ConfigError(f"algo={ctx.algo_name}'s image sampler has no n_classes: it"
                              " cannot draw classes")
        cls = opts.get("class", "all")
        if cls != "all" and not cls < k:
            raise ConfigError(f"class={cls} is out of range: the model knows classes 0..{k - 1}"
                              f" (env={ctx.env_name}), or class=all for one row of each")
        w = opts.get("guidance", getattr(ctx.algo, "guidance", 0.0))
        from rlrun.algos.ddpm import class_rows

        labels = class_rows(k, n) if cls == "all" else torch.full((n,), cls, dtype=torch.long)
        nrow = len(labels) // k if cls == "all" else None
        x = sample(len(labels), sampler, steps, labels=labels, guidance=w)
        settings = {"class": cls, "guidance": w}
    grid = image_grid(x, nrow=nrow)
    from rlrun.algos.ddpm import save_png

    save_png(grid, ctx.run_dir / SAMPLES_FILE)  # atomically
    rec["settings"].update(samples=n, sampler=sampler, steps=steps if sampler == "ddim" else None,
                           **settings)
    rec["image"] = SAMPLES_FILE
    what = "" if not settings else (
        f", one row per class at guidance w={settings['guidance']:g}" if settings["class"] ==
        "all" else f" of class {settings['class']} at guidance w={settings['guidance']:g}")
    echo(f"{ctx.algo_name} on {ctx.env_name} (checkpoint at step {ctx.step}): {len(x)} {sampler}"
         f" samples{what} in {ctx.run_dir / SAMPLES_FILE}")


def _unlabelled(ctx: ReadOnlyRunContext) -> str:
    """', and env=X has no class labels' where the run's image data set has none."""
    try:
        from rlrun.data.images import has_labels

        return "" if has_labels(ctx.env) else f", and env={ctx.env_name} has no class labels"
    except (RlrunError, OSError, AttributeError):  # its folder is gone: say nothing of it
        return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rlrun-eval` console script."""
    from rlrun.core.errors import describe_os_error

    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return
    try:
        run_dir, opts = parse_args(argv)
        evaluate(run_dir, opts)
    except RlrunError as e:
        _fail(str(e))
    except OSError as e:  # eval.json goes into the run dir: a read-only one is copied first
        _fail(describe_os_error(e, "copy the run dir somewhere writable and evaluate the copy"))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {EVAL_FILE} not written", file=sys.stderr)
        sys.exit(130)


def _fail(message: str) -> None:
    from rlrun.core.escape import one_line

    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
