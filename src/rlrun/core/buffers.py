"""Replay and rollout storage for the deep RL loops, kept as tensors on the run's device.

Keeping the replay buffer on the device means a sampled batch never crosses the host/device
boundary inside the update, and sampling is one `randint` plus one gather per field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ReplayBuffer:
    """A ring buffer of transitions (obs, action, reward, next_obs, terminated).

    `terminated` is the true end of an episode; truncated episodes store their real last
    observation as `next_obs` and are bootstrapped like any other step.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 device: str | torch.device, obs_dtype: torch.dtype = torch.float32,
                 act_dtype: torch.dtype = torch.float32):
        self.capacity, self.device = int(capacity), torch.device(device)
        self.pos, self.full = 0, False
        kw = {"device": self.device}
        self.data = {
            "obs": torch.zeros((self.capacity, *obs_shape), dtype=obs_dtype, **kw),
            "next_obs": torch.zeros((self.capacity, *obs_shape), dtype=obs_dtype, **kw),
            "actions": torch.zeros((self.capacity, *act_shape), dtype=act_dtype, **kw),
            "rewards": torch.zeros(self.capacity, dtype=torch.float32, **kw),
            "terminated": torch.zeros(self.capacity, dtype=torch.float32, **kw),
        }

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Add one step of a vector env (a batch of `num_envs` transitions)."""
        n = len(obs)
        idx = (torch.arange(n) + self.pos) % self.capacity
        for key, value in (("obs", obs), ("actions", actions), ("rewards", rewards),
                           ("next_obs", next_obs), ("terminated", terminated)):
            t = self.data[key]
            t[idx.to(self.device)] = torch.as_tensor(np.asarray(value), dtype=t.dtype).to(
                self.device, non_blocking=True).reshape(n, *t.shape[1:])
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(self), (batch_size,), device=self.device)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        n = len(self)
        return {"pos": self.pos, "full": self.full,
                **{k: v[:n].cpu() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        n = len(self)
        for k, v in self.data.items():
            v[:n] = state[k].to(self.device)
