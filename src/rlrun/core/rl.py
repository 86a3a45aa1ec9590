"""Pieces every deep RL loop shares: episode statistics, SPS, deterministic evaluation with
optional video, and the optimiser/compile switches.

Evaluation runs on its own env, never the training one, seeded `seed + 10_000 + episode`:
every evaluation replays the same start states (common random numbers), so points on the
`eval/return` curve differ because the policy changed, not the luck of the draw, and the
evaluation keeps no state a resumed run would have to restore.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError

EVAL_SEED_OFFSET = 10_000


def log_episodes(logger: Any, infos: dict, step: int) -> float | None:
    """Log `charts/episodic_return/length` of episodes that ended this step (vector
    RecordEpisodeStatistics); returns the mean return of those episodes, or None."""
    if "episode" not in infos:
        return None
    done = infos["_episode"]
    returns = infos["episode"]["r"][done]
    lengths = infos["episode"]["l"][done]
    for r, n in zip(returns, lengths, strict=True):
        logger.scalar("charts/episodic_return", float(r), step)
        logger.scalar("charts/episodic_length", float(n), step)
    return float(np.mean(returns))


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
    """Env steps per second since the last `read` (the loop's own pace, not since start,
    so a resumed run does not report a diluted figure)."""

    def __init__(self, step: int):
        self.t, self.step = time.perf_counter(), step

    def read(self, step: int) -> float:
        t = time.perf_counter()
        sps = (step - self.step) / max(t - self.t, 1e-9)
        self.t, self.step = t, step
        return sps


class Evaluator:
    """Deterministic evaluation episodes on a separately seeded env (+ video)."""

    def __init__(self, env_cfg: Any, seed: int, episodes: int, video: bool):
        from rlrun.envs.gym import make_env

        self.seed, self.episodes, self.video = seed + EVAL_SEED_OFFSET, episodes, video
        self.env = make_env(env_cfg, render=video)
        if video and "rgb_array" not in self.env.metadata.get("render_modes", []):
            raise ConfigError(f"logger.video=true, but env {env_cfg.id} cannot render"
                              " rgb_array frames: set logger.video=false")

    def run(self, policy: Callable[[np.ndarray], np.ndarray], logger: Any, step: int,
            obs_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
        """Play `episodes` episodes with `policy(obs_batch) -> action_batch`; log
        `eval/return`, `eval/length` (and a video of the first); return the mean return."""
        returns, lengths, frames = [], [], []
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
        logger.scalar("eval/return", float(np.mean(returns)), step)
        logger.scalar("eval/length", float(np.mean(lengths)), step)
        if frames:
            logger.video("eval/video", np.stack(frames), step)
        return float(np.mean(returns))

    def close(self) -> None:
        self.env.close()


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
        self.rms.count = float(np.asarray(s["count"]))


def adam(params: Any, lr: float, device: str, eps: float = 1e-8) -> Any:
    """Adam with a fused kernel (CPU and CUDA, torch >= 2.4): one launch for all
    parameters instead of a Python loop over them."""
    import torch

    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


class FlatParams:
    """A module's parameters as views of one flat tensor, and their gradients as views of
    another, so the optimiser sees one parameter.

    Why: an optimiser step, a gradient-norm clip and a zero_grad each loop over the parameter
    list in Python. For PPO's small networks that bookkeeping cost more than the arithmetic
    (about 200 us per minibatch for six tensors). Packed, `adam([flat.param], ...)` steps one
    tensor with the same numbers (Adam is elementwise), the clip is one norm and zeroing one
    fill. Autograd keeps accumulating into each parameter's own `.grad`, which is a view of
    `flat.param.grad` (the layout DDP's `gradient_as_bucket_view` uses), so gradients must be
    zeroed with `zero_grad()` here, never set to None. Build it after moving the module to its
    device; `load_state_dict` on the module afterwards copies into the views.
    """

    def __init__(self, module: Any):
        import torch

        self.params = params = [p for p in module.parameters() if p.requires_grad]
        self.param = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.param.grad = torch.zeros_like(self.param)
        start = 0
        for p in params:
            end = start + p.numel()
            p.data = self.param.data[start:end].view_as(p)
            p.grad = self.param.grad[start:end].view_as(p)
            start = end

    def zero_grad(self) -> None:
        self.param.grad.zero_()

    def flatten(self, tensors: Any) -> Any:
        """One tensor per packed parameter (in `params` order) as one flat tensor."""
        import torch

        return torch.cat([t.reshape(-1) for t in tensors])

    def clip_grad_norm_(self, max_norm: float) -> Any:
        """`torch.nn.utils.clip_grad_norm_` over all gradients at once; returns the norm."""
        import torch

        grad = self.param.grad
        norm = torch.linalg.vector_norm(grad)
        if grad.device.type == "cpu":  # a Python float costs no sync here, and 3 fewer ops
            coef = max_norm / (float(norm) + 1e-6)
            if coef < 1.0:
                grad.mul_(coef)
        else:
            grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm


def maybe_compile(fn: Callable, enabled: bool, device: str) -> Callable:
    """`algo.compile=true`: torch.compile the update; on CUDA with CUDA graphs
    ("reduce-overhead"), which remove per-kernel launch costs of small networks."""
    if not enabled:
        return fn
    import torch

    mode = "reduce-overhead" if device.startswith("cuda") else "default"
    return torch.compile(fn, mode=mode, dynamic=False)
