"""Small pieces every deep RL loop shares: episode statistics, true last observations, SPS,
observation normalisation, and the optimiser and compile switches."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def log_episodes(logger: Any, infos: dict, step: int, last: float | None = None
                 ) -> float | None:
    """Log `charts/episodic_return/length` of episodes that ended this step (vector
    RecordEpisodeStatistics); returns the mean return of those episodes, or `last` (the
    loop's latest, its progress headline) when none ended."""
    if "episode" not in infos:
        return last
    done = infos["_episode"]
    returns = infos["episode"]["r"][done]
    lengths = infos["episode"]["l"][done]
    for r, n in zip(returns, lengths, strict=True):
        logger.scalar("charts/episodic_return", float(r), step)
        logger.scalar("charts/episodic_length", float(n), step)
    return float(np.mean(returns))


def step_into_replay(envs: Any, rb: Any, obs: np.ndarray, actions: np.ndarray
                     ) -> tuple[np.ndarray, dict]:
    """One step of the vector env, its transitions added to the replay `rb` (with the true
    last observations of the episodes that ended): the next observations and the infos."""
    next_obs, rewards, term, trunc, infos = envs.step(actions)
    rb.add(obs, actions, rewards, real_next_obs(next_obs, term | trunc, infos), term)
    return next_obs, infos


def train_due(cfg: Any, step: int, n_envs: int) -> bool:
    """Whether an off-policy loop (SAC, TD3, DQN) trains after the env step that reached
    `step`: past `learning_starts`, every `train_frequency` vector steps."""
    return step > cfg.learning_starts and (step // n_envs) % cfg.train_frequency == 0


def real_next_obs(next_obs: np.ndarray, done: np.ndarray, infos: dict) -> np.ndarray:
    """The observations each transition really ended in: with same-step autoreset,
    `next_obs` of a finished env is already the next episode's first one, and the true last
    observation sits in `infos["final_obs"]` (the replay needs it to bootstrap truncations)."""
    if not done.any():
        return next_obs
    real = next_obs.copy()
    real[done] = np.stack(infos["final_obs"][done])
    return real


class SPSMeter:
    """Env steps per second since the loop started or resumed: what SB3's `time/fps` and
    CleanRL's `SPS` report. A rate over each log interval instead swings with the loop's
    bursts (DQN trains 128 updates every 256 steps, an evaluation stalls one interval), and
    a mean of those rates overstates the pace (2.7x for rl-zoo's DQN on CartPole); counting
    from the resume, not from step 0, keeps a resumed run's figure undiluted."""

    def __init__(self, step: int, clock: Callable[[], float] = time.perf_counter):
        self.clock, self.step = clock, step
        self.t = clock()

    def read(self, step: int) -> float:
        return (step - self.step) / max(self.clock() - self.t, 1e-9)


class ObsNormalizer:
    """Running mean/std observation normalisation with clipping (SB3's VecNormalize, CleanRL's
    NormalizeObservation + clip), applied by the loop to the observations it is handed.

    Gymnasium's vector NormalizeObservation refuses SAME_STEP autoreset (it could not
    transform `final_obs`); here the same statistics (Gymnasium's RunningMeanStd) normalise
    observations, final observations and evaluation inputs alike, and are checkpointed.
    """

    def __init__(self, shape: tuple[int, ...], clip: float, epsilon: float = 1e-8):
        from gymnasium.wrappers.utils import RunningMeanStd

        self.rms, self.clip, self.eps = RunningMeanStd(shape=shape), clip, epsilon

    def __call__(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        if update:
            self.rms.update(obs)
        z = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def frozen(self, obs: np.ndarray) -> np.ndarray:
        return self(obs, update=False)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.rms.mean.copy(), "var": self.rms.var.copy(),
                "count": np.asarray(self.rms.count, dtype=np.float64)}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.rms.mean, self.rms.var = np.asarray(s["mean"]).copy(), np.asarray(s["var"]).copy()
        # checkpoints written before core/checkpoint.py kept 0-d arrays 0-d hold shape (1,)
        self.rms.count = float(np.asarray(s["count"]).reshape(-1)[0])


def adam(params: Any, lr: float, device: str, eps: float = 1e-8) -> Any:
    """Adam with a fused kernel (CPU and CUDA, torch >= 2.4): one launch for all
    parameters instead of a Python loop over them."""
    import torch

    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


def maybe_compile(fn: Callable, enabled: bool, device: str) -> Callable:
    """`algo.compile=true`: torch.compile the update; on CUDA with CUDA graphs
    ("reduce-overhead"), which remove per-kernel launch costs of small networks."""
    if not enabled:
        return fn
    import torch

    mode = "reduce-overhead" if device.startswith("cuda") else "default"
    if torch.are_deterministic_algorithms_enabled():  # deterministic=true: inductor too
        torch.use_deterministic_algorithms(True)  # (core.seeding.deterministic_kernels)
    return torch.compile(fn, mode=mode, dynamic=False)


def ndtr(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF: maps a N(0, 1) draw to a U(0, 1) one (SAC's correlated
    exploration noise before learning starts)."""
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def whole_rollouts(ctx: Any, total_steps: int, num_steps: int, n_envs: int) -> int:
    """How many rollouts of `num_steps` x `n_envs` steps the budget buys: rounded down, so a
    run never passes its budget (at least one). When that is not the budget exactly, the run
    says so once, in one log line and as `total_steps_run` in results.json."""
    import logging

    batch = num_steps * n_envs
    n = max(1, total_steps // batch)
    if n * batch != total_steps:
        logging.getLogger("rlrun").info(
            "algo.total_steps=%d is not a whole number of rollouts of %d steps (%d envs x %d):"
            " the run trains %d steps (%d rollouts)", total_steps, batch, n_envs, num_steps,
            n * batch, n)
        ctx.record(total_steps_run=n * batch)
    return n
