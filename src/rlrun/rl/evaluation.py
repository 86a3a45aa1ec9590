"""Deterministic evaluation episodes, played as one batch, with optional video, on envs of
their own.

Evaluation runs on its own envs, never the training ones. Episode i is seeded
`seed + 10_000 + i`: every evaluation replays the same start states (common random numbers),
so points on the `eval/return` curve differ because the policy changed, not the luck of the
draw, and the evaluation keeps no state a resumed run would have to restore.

An evaluation's episodes are played side by side, one env copy per episode (copy i reset
with episode i's seed), with one batched policy call per step over the episodes still
running. Played one after another with one observation per call, ten CartPole episodes cost
5,000 forward passes; side by side they cost 500. An episode's own steps and seeds are
those it had when played alone, so its return is the same, up to the last bits of a float:
BLAS sums a row of a batch in another order than a single row, so continuous actions can
differ by an ulp (discrete ones, an argmax, practically never do). `rlrun-eval` plays them
the same way, so it replays a run's evaluation exactly.

In a loop (`Evaluator.of_run`), the episodes check the stop flag at every step: Ctrl-C
stops an evaluation within one env step. The partial evaluation is not logged; the
checkpoint saved at that step records it as cut short, and the resumed run plays it again,
whole, from that checkpoint (with the algorithm's `load_policy` hook, the one `rlrun-eval`
uses), before it trains on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError

EVAL_SEED_OFFSET = 10_000
MAX_COPIES = 64  # env copies played side by side; more episodes are played in waves

Policy = Callable[[np.ndarray], np.ndarray]
PolicyHook = Callable[[Any, Any, bool], Policy]  # load_policy(ctx, env, deterministic)


class EvaluationStopped(Exception):  # noqa: N818 - a signal, not an error
    """The user asked the run to stop in the middle of an evaluation."""


class Evaluator:
    """Deterministic evaluation episodes on separately seeded envs (+ video).

    `ctx` (a run context) makes the episodes stop within one env step when the run is asked
    to stop; `load_policy` (the algorithm's rlrun-eval hook) lets a resumed run redo an
    evaluation that Ctrl-C cut short. Loops build one with `Evaluator.of_run`."""

    def __init__(self, env_cfg: Any, seed: int, episodes: int, video: bool,
                 video_option: str = "logger.video", ctx: Any = None,
                 load_policy: PolicyHook | None = None):
        from rlrun.envs.gym import make_env

        self.seed, self.episodes, self.video = seed + EVAL_SEED_OFFSET, episodes, video
        self.ctx, self.load_policy = ctx, load_policy
        self.envs = [make_env(env_cfg, render=video)]
        if video and "rgb_array" not in (self.env.metadata.get("render_modes") or []):
            self.close()
            raise ConfigError(f"{video_option}=true, but env {env_cfg.id} cannot render"
                              f" rgb_array frames: set {video_option}=false")
        try:
            self.envs += [make_env(env_cfg, render=video)
                          for _ in range(min(episodes, MAX_COPIES) - 1)]
        except BaseException:
            self.close()
            raise
        if ctx is not None:
            ctx.on_resume(self._redo_cut_short)

    @classmethod
    def of_run(cls, ctx: Any, episodes: int, load_policy: PolicyHook | None = None
               ) -> Evaluator:
        """A loop's evaluator: the run's task and seed, video as `logger.video` says, Ctrl-C
        honoured within one env step, and an evaluation it cut short redone on resume with
        `load_policy` (the module's rlrun-eval hook; without one it is only skipped)."""
        return cls(ctx.env, ctx.seed, episodes, ctx.logger_cfg.video, ctx=ctx,
                   load_policy=load_policy)

    @property
    def env(self) -> Any:
        """The first env copy: the one whose episode is recorded, and the one rlrun-eval's
        hooks read the spaces of."""
        return self.envs[0]

    def run(self, policy: Policy, logger: Any, step: int,
            obs_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
        """Play `episodes` episodes with `policy(obs_batch) -> action_batch`; log
        `eval/return`, `eval/length` (and a video of the first); return the mean return.

        Stopped by the user midway: nothing is logged, NaN is returned, and the run's next
        checkpoint (the one the stop saves, at this step) records the evaluation as cut
        short, for the resume to redo."""
        try:
            return self._play_and_log(policy, logger, step, obs_transform)
        except EvaluationStopped:
            if self.load_policy is None:
                logging.getLogger("rlrun").warning(
                    "the evaluation at step %d was stopped before its end: not logged, and"
                    " not redone on resume (the algorithm has no load_policy hook)", step)
            else:
                self.ctx.pending_evaluation = step
            return float("nan")

    def _play_and_log(self, policy: Policy, logger: Any, step: int,
                      obs_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
        returns, lengths, frames = self.play(policy, obs_transform, stop=self._stop)
        logger.scalar("eval/return", float(np.mean(returns)), step)
        logger.scalar("eval/length", float(np.mean(lengths)), step)
        if frames:
            logger.video("eval/video", np.stack(frames), step)
        if self.ctx is not None and self.ctx.pending_evaluation == step:
            self.ctx.pending_evaluation = None
        return float(np.mean(returns))

    def _stop(self) -> bool:
        return self.ctx is not None and self.ctx.stop_requested

    def play(self, policy: Policy,
             obs_transform: Callable[[np.ndarray], np.ndarray] | None = None,
             stop: Callable[[], bool] | None = None
             ) -> tuple[list[float], list[int], list[np.ndarray]]:
        """Every episode's return and length, and the frames of the first when recording
        (what `run` logs and `rlrun-eval` writes to eval.json). `stop()` is asked before
        every step; True raises EvaluationStopped."""
        returns: list[float] = [0.0] * self.episodes
        lengths: list[int] = [0] * self.episodes
        frames: list[np.ndarray] = []
        width = len(self.envs)
        for first in range(0, self.episodes, width):  # waves of at most MAX_COPIES episodes
            obs: dict[int, np.ndarray] = {}
            for k, ep in enumerate(range(first, min(first + width, self.episodes))):
                obs[ep] = self.envs[k].reset(seed=self.seed + ep)[0]
            if self.video and first == 0:
                frames.append(self.env.render())
            while obs:
                if stop is not None and stop():
                    raise EvaluationStopped
                running = list(obs)
                batch = np.stack([obs[ep] for ep in running])
                actions = policy(obs_transform(batch) if obs_transform else batch)
                for action, ep in zip(actions, running, strict=True):
                    o, r, term, trunc, _ = self.envs[ep - first].step(action)
                    returns[ep] += float(r)
                    lengths[ep] += 1
                    if self.video and ep == 0:
                        frames.append(self.env.render())
                    if term or trunc:
                        del obs[ep]
                    else:
                        obs[ep] = o
        return returns, lengths, frames

    def _redo_cut_short(self) -> None:
        """On resume: the evaluation that Ctrl-C cut short at the checkpoint's step, played
        again whole with the policy as saved (built by `load_policy` beside the loop's own
        networks, the global RNGs left as the checkpoint set them)."""
        from rlrun.core.run import CheckpointView
        from rlrun.core.seeding import rng_state, set_rng_state

        ctx = self.ctx
        step = ctx.pending_evaluation
        if step is None or self.load_policy is None:
            return
        saved = rng_state()
        policy = self.load_policy(CheckpointView(ctx), self.env, True)
        set_rng_state(saved)  # building networks drew from torch's RNG
        try:
            self._play_and_log(policy, ctx.logger, step)
        except EvaluationStopped:
            ctx.check_stop()  # stopped again: the checkpoint still holds it, stop now

    def close(self) -> None:
        for env in self.envs:
            env.close()
