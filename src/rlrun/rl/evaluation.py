"""Deterministic evaluation episodes, with optional video, on an env of their own.

Evaluation runs on its own env, never the training one, seeded `seed + 10_000 + episode`:
every evaluation replays the same start states (common random numbers), so points on the
`eval/return` curve differ because the policy changed, not the luck of the draw, and the
evaluation keeps no state a resumed run would have to restore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError

EVAL_SEED_OFFSET = 10_000


class Evaluator:
    """Deterministic evaluation episodes on a separately seeded env (+ video)."""

    def __init__(self, env_cfg: Any, seed: int, episodes: int, video: bool,
                 video_option: str = "logger.video"):
        from rlrun.envs.gym import make_env

        self.seed, self.episodes, self.video = seed + EVAL_SEED_OFFSET, episodes, video
        self.env = make_env(env_cfg, render=video)
        if video and "rgb_array" not in (self.env.metadata.get("render_modes") or []):
            self.env.close()
            raise ConfigError(f"{video_option}=true, but env {env_cfg.id} cannot render"
                              f" rgb_array frames: set {video_option}=false")

    def run(self, policy: Callable[[np.ndarray], np.ndarray], logger: Any, step: int,
            obs_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
        """Play `episodes` episodes with `policy(obs_batch) -> action_batch`; log
        `eval/return`, `eval/length` (and a video of the first); return the mean return."""
        returns, lengths, frames = self.play(policy, obs_transform)
        logger.scalar("eval/return", float(np.mean(returns)), step)
        logger.scalar("eval/length", float(np.mean(lengths)), step)
        if frames:
            logger.video("eval/video", np.stack(frames), step)
        return float(np.mean(returns))

    def play(self, policy: Callable[[np.ndarray], np.ndarray],
             obs_transform: Callable[[np.ndarray], np.ndarray] | None = None
             ) -> tuple[list[float], list[int], list[np.ndarray]]:
        """Every episode's return and length, and the frames of the first when recording
        (what `run` logs and `rlrun-eval` writes to eval.json)."""
        returns: list[float] = []
        lengths: list[int] = []
        frames: list[np.ndarray] = []
        for ep in range(self.episodes):
            obs, _ = self.env.reset(seed=self.seed + ep)
            total, n, done = 0.0, 0, False
            record = self.video and ep == 0
            if record:
                frames.append(self.env.render())
            while not done:
                o = obs_transform(obs[None]) if obs_transform else obs[None]
                action = policy(o)[0]
                obs, r, term, trunc, _ = self.env.step(action)
                total, n, done = total + float(r), n + 1, term or trunc
                if record:
                    frames.append(self.env.render())
            returns.append(total)
            lengths.append(n)
        return returns, lengths, frames

    def close(self) -> None:
        self.env.close()
