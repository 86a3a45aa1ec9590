"""Gymnasium tasks, named by their registered id (`env=CartPole-v1`), as vector envs.

The deep RL loops all step a Gymnasium vector env (`SyncVectorEnv` by default,
`env.vectorization=async` for `AsyncVectorEnv`) in SAME_STEP autoreset mode: a step that
ends an episode returns the next episode's first observation and puts the last one in
`info["final_obs"]`, which is what bootstrapping on truncation needs. Episode statistics
come from Gymnasium's `RecordEpisodeStatistics` wrapper.
"""

from __future__ import annotations

import difflib
import importlib
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from rlrun.core.errors import ConfigError, PairingError

if TYPE_CHECKING:  # the schema imports this module's checks lazily: no import circle
    from rlrun.schemas.gym import GymEnvConfig

# Where an env's code lives -> the rlrun extra that installs what it needs.
EXTRAS = {"gymnasium.envs.box2d": "box2d", "gymnasium.envs.mujoco": "mujoco",
          "ale_py": "atari"}


def ensure_registered(env_id: str) -> None:
    """Register ALE ids on demand, and `module:EnvId` ids (Gymnasium's own form) by
    importing the module, which registers its envs; unknown ids and missing modules get a
    one-line error (with close matches)."""
    import gymnasium

    registry = gymnasium.envs.registry
    module, env_id = split_id(env_id)
    if module is not None:
        if not module or not all(part.isidentifier() for part in module.split(".")) \
                or not env_id:
            raise ConfigError(f"id={module}:{env_id}: write Gymnasium's module:EnvId form,"
                              " e.g. my_pkg.envs:MyEnv-v0 (or a plain registered id)")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"id={module}:{env_id}: module {module!r} cannot be imported"
                              f" ({e}); install the package that provides it") from None
        except Exception as e:  # the module's own code failed: one line, naming it
            first = str(e).splitlines()[0][:160] if str(e) else ""
            raise ConfigError(f"id={module}:{env_id}: importing {module!r} raised"
                              f" {type(e).__name__}: {first}; fix that module") from None
    if is_atari(env_id) and env_id not in registry:
        try:
            import ale_py
        except ImportError:
            raise ConfigError(
                f"id={env_id!r} needs the Atari extra: pip install 'rlrun[atari]'"
            ) from None
        gymnasium.register_envs(ale_py)
    if env_id not in registry:
        close = difflib.get_close_matches(env_id, list(registry), n=3)
        hint = (f"; did you mean {', '.join(close)}?" if close else
                "; python -c 'import gymnasium; gymnasium.pprint_registry()' lists them")
        where = f" (after importing {module})" if module else ""
        raise ConfigError(f"id={env_id!r} is not a registered Gymnasium env{where}{hint}")


def split_id(env_id: str) -> tuple[str | None, str]:
    """`"pkg.mod:Corridor-v0"` -> ("pkg.mod", "Corridor-v0"); a plain id -> (None, id)."""
    module, sep, name = env_id.partition(":")
    return (module, name) if sep else (None, env_id)


def check_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    """`env.kwargs` against the env constructor's signature, before any env is built: an
    unknown name, or a value whose type differs from the default's (`+env.kwargs.g=abc`,
    which Pendulum would only trip over mid-step), is a one-line error."""
    import inspect

    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    from rlrun.core.config import did_you_mean

    spec = _spec(env_id)
    if not kwargs or spec is None:
        return
    try:
        entry = spec.entry_point
        params = inspect.signature(load_env_creator(entry) if isinstance(entry, str)
                                   else entry).parameters
    except (ImportError, gymnasium.error.Error, ValueError, TypeError, AttributeError):
        return  # a missing extra: make_env names it
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    defaults = {**{n: p.default for n, p in params.items() if p.default is not p.empty},
                **(spec.kwargs or {})}
    for key, value in kwargs.items():
        if key not in params and key not in ("max_episode_steps", "disable_env_checker"):
            names = [n for n in params if n != "self"]
            raise ConfigError(f"env.kwargs.{key}: {env_id} takes no such argument"
                              f"{did_you_mean(str(key), names, 'env.kwargs.')}")
        default = defaults.get(key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            continue
        if not ok:
            raise ConfigError(f"env.kwargs.{key}={value!r}: {env_id} expects a"
                              f" {type(default).__name__}, like its default {default!r}")


def extra_for(env_id: str) -> str | None:
    entry = str(getattr(_spec(env_id), "entry_point", ""))
    return next((x for mod, x in EXTRAS.items() if entry.startswith(mod)), None)


def _spec(env_id: str) -> Any:
    import gymnasium

    return gymnasium.envs.registry.get(split_id(env_id)[1])


def is_atari(env_id: str) -> bool:
    return split_id(env_id)[1].startswith("ALE/")


def _headless_sdl() -> None:
    """Frames for videos need no window: without a display, point SDL (pygame, which renders
    the classic-control and Box2D tasks) at its dummy video driver, else it looks for a session
    and prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on stderr.
    A driver the user chose is kept; with a display nothing changes."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def make_env(cfg: GymEnvConfig, render: bool = False) -> Any:
    """One env; a missing optional dependency becomes an error naming the rlrun extra.
    ALE ids get the standard Atari preprocessing (`AtariOptions`)."""
    import gymnasium

    kwargs = dict(cfg.kwargs)
    atari = is_atari(cfg.id)
    if cfg.max_episode_steps is not None and not atari:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render:
        kwargs["render_mode"] = "rgb_array"
        _headless_sdl()
    if atari:
        kwargs.setdefault("frameskip", 1)  # AtariPreprocessing skips frames itself
    try:
        env = gymnasium.make(cfg.id, **kwargs)
        return _atari_wrappers(env, cfg) if atari else env
    except (gymnasium.error.DependencyNotInstalled, ImportError) as e:
        extra = extra_for(cfg.id)
        fix = f"pip install 'rlrun[{extra}]'" if extra else f"install what it needs ({e})"
        raise ConfigError(f"env {cfg.id} needs an optional dependency: {fix}") from None
    except TypeError as e:
        raise ConfigError(f"env.kwargs for {cfg.id}: {e}") from None


def _atari_wrappers(env: Any, cfg: GymEnvConfig) -> Any:
    """Gymnasium's AtariPreprocessing + FrameStackObservation (+ a TimeLimit in agent steps:
    `env.max_episode_steps` counts decisions, not emulator frames)."""
    from gymnasium import wrappers

    a = cfg.atari
    env = wrappers.AtariPreprocessing(env, noop_max=a.noop_max, frame_skip=a.frame_skip,
                                      screen_size=a.screen_size, grayscale_obs=a.grayscale)
    if cfg.max_episode_steps is not None:
        env = wrappers.TimeLimit(env, cfg.max_episode_steps)
    return wrappers.FrameStackObservation(env, a.frame_stack)


def atari_vector_wrappers(cfg: GymEnvConfig) -> tuple:
    """Reward clipping to [-1, 1] outside the episode statistics (they report game scores)."""
    if not (is_atari(cfg.id) and cfg.atari.clip_reward):
        return ()
    import gymnasium as gym

    return (lambda e: gym.wrappers.vector.ClipReward(e, -1.0, 1.0),)


def make_vector_env(cfg: GymEnvConfig, num_envs: int, seed: int,
                    wrappers: tuple = ()) -> Any:
    """`num_envs` copies in SAME_STEP autoreset mode with episode statistics, reset with
    seeds `seed, seed+1, ...`; `wrappers` are vector wrappers applied last (normalisation)."""
    import gymnasium as gym

    make_env(cfg).close()  # fail here, in this process, on a missing extra or bad kwargs
    fns = [lambda: make_env(cfg)] * num_envs
    mode = gym.vector.AutoresetMode.SAME_STEP
    if cfg.vectorization == "async":
        envs = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
    else:
        envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    for i, sub in enumerate(getattr(envs, "envs", ())):  # sync: the sub-envs' own spaces,
        sub.action_space.seed(seed + i)  # whose RNGs a checkpoint holds, seeded, not entropy
        sub.observation_space.seed(seed + i)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    for wrap in wrappers:
        envs = wrap(envs)
    envs.action_space.seed(seed)
    return envs


def space_kind(space: Any) -> str:
    """"discrete", "continuous" (Box actions) or the space's class name."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return "discrete"
    if isinstance(space, spaces.Box):
        return "continuous"
    return type(space).__name__


def check_action_space(algo_name: str, cfg: GymEnvConfig, accepts: tuple[str, ...],
                       suggestions: dict[str, str]) -> tuple[int, ...]:
    """PairingError when the env's action space is not one the algorithm learns; the shape
    of its observations otherwise (after the preprocessing training applies)."""
    env = make_env(cfg)
    try:
        kind = space_kind(env.action_space)
        obs = env.observation_space
    finally:
        env.close()
    if kind not in accepts:
        need = " or ".join(accepts)
        fit = suggestions.get(kind)
        hint = f"; try algo={fit}" if fit else ""
        raise PairingError(f"algo={algo_name} needs a {need} action space, but env={cfg.id}"
                           f" has a {kind} one ({env.action_space}){hint}")
    if space_kind(obs) != "continuous":
        raise PairingError(f"algo={algo_name} needs Box (vector or image) observations;"
                           f" env={cfg.id} observes {obs}")
    return tuple(obs.shape)


# ---- exact resume: the state of every sub-env ------------------------------------------------
def vector_env_state(envs: Any) -> dict[str, Any] | None:
    """Sub-envs' state as plain data (`rlrun.envs.env_state`, no pickle) and the episode
    statistics, or None where the sub-envs live in other processes (async) or keep their
    state in C objects (Box2D, MuJoCo, ALE): then a resume starts new episodes."""
    from rlrun.envs import env_state

    inner = envs.unwrapped
    if not hasattr(inner, "envs"):
        return None
    subs = env_state.capture(list(inner.envs))
    if subs is None:
        return None
    stats = _find_wrapper(envs, "RecordEpisodeStatistics")
    return {"format": "data-v1", "subs": subs, "returns": stats.episode_returns.copy(),
            "lengths": stats.episode_lengths.copy()}


def load_vector_env_state(envs: Any, state: dict[str, Any] | None) -> bool:
    """Restore what `vector_env_state` saved; False if there was nothing to restore."""
    if state is None:
        return False
    from rlrun.core.errors import CheckpointError
    from rlrun.envs import env_state

    if not isinstance(state, dict) or state.get("format") != "data-v1":
        # rlrun < 0.2 pickled the env objects; such state is never unpickled (it could run code).
        raise CheckpointError("the checkpoint's env state is in a format this rlrun does not"
                              " load (pickled envs, from an older rlrun or tampered with);"
                              " start the run afresh")
    env_state.restore(list(envs.unwrapped.envs), state["subs"])
    stats = _find_wrapper(envs, "RecordEpisodeStatistics")
    stats.episode_returns[:] = np.asarray(state["returns"])
    stats.episode_lengths[:] = np.asarray(state["lengths"])
    return True


def _find_wrapper(envs: Any, name: str) -> Any:
    e = envs
    while e is not None:
        if type(e).__name__ == name:
            return e
        e = getattr(e, "env", None)
    raise ValueError(f"no {name} wrapper")


def normalizer_state(envs: Any) -> dict[str, Any]:
    """Running statistics of the NormalizeObservation / NormalizeReward wrappers."""
    out: dict[str, Any] = {}
    e = envs
    while e is not None:
        name = type(e).__name__
        if name == "NormalizeObservation":
            out["obs"] = _rms(e.obs_rms)
        elif name == "NormalizeReward":
            out["reward"] = {**_rms(e.return_rms),
                             "accumulated": np.asarray(e.accumulated_reward).copy()}
        e = getattr(e, "env", None)
    return out


def load_normalizer_state(envs: Any, state: dict[str, Any]) -> None:
    e = envs
    while e is not None:
        name = type(e).__name__
        if name == "NormalizeObservation" and "obs" in state:
            _set_rms(e.obs_rms, state["obs"])
        elif name == "NormalizeReward" and "reward" in state:
            _set_rms(e.return_rms, state["reward"])
            e.accumulated_reward = np.asarray(state["reward"]["accumulated"]).copy()
        e = getattr(e, "env", None)


def _rms(rms: Any) -> dict[str, Any]:
    return {"mean": np.asarray(rms.mean).copy(), "var": np.asarray(rms.var).copy(),
            "count": np.asarray(rms.count, dtype=np.float64)}


def _set_rms(rms: Any, s: dict[str, Any]) -> None:
    rms.mean = np.asarray(s["mean"]).copy()
    rms.var = np.asarray(s["var"]).copy()
    rms.count = float(np.asarray(s["count"]))
