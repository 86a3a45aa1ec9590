"""Corridor: walk right along a corridor to the goal; registered as `Corridor-v0` on import.

    rlrun algo=reinforce env=corridor                                   # this package's config
    rlrun algo=reinforce env=gym env.id=rlrun_reinforce.envs:Corridor-v0  # Gymnasium's form
    rlrun algo=ppo env=corridor                                         # any rlrun algorithm

The agent starts in cell 0 of `length` cells; actions are 0 (left) and 1 (right); with
probability `slip` the other action happens. Reaching the last cell gives +1 and ends the
episode; every other step costs `step_cost`. The observation is the one-hot cell (a Box, as
rlrun's deep RL loops expect). A random walk needs about length^2 steps to get there; the
best policy takes length - 1. Episodes are cut at 400 steps (a truncation;
`env.max_episode_steps=...` changes it).

The state is plain data (an int and the env's NumPy generator), so rlrun's exact resume
saves and restores it like any Gymnasium classic-control env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    # What an episode changes: the only attributes a checkpoint may set on resume (rlrun saves
    # env state as data and restores these; the rest comes from the run's config).
    rlrun_state_attrs = ("pos",)

    def __init__(self, length: int = 10, slip: float = 0.0, step_cost: float = 0.01,
                 render_mode: str | None = None):
        if length < 2:
            raise ValueError(f"length={length}: a corridor needs at least 2 cells")
        if not 0.0 <= slip < 0.5:
            raise ValueError(f"slip={slip} must be in [0, 0.5)")
        self.length, self.slip, self.step_cost = int(length), float(slip), float(step_cost)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (self.length,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.pos = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        move = 1 if int(action) == 1 else -1
        if self.slip and self.np_random.random() < self.slip:
            move = -move
        self.pos = min(max(self.pos + move, 0), self.length - 1)
        at_goal = self.pos == self.length - 1
        reward = 1.0 if at_goal else -self.step_cost
        return self._obs(), reward, at_goal, False, {}

    def render(self) -> np.ndarray | None:
        """An RGB strip: grey cells, the goal green, the agent red (for logger.video)."""
        if self.render_mode != "rgb_array":
            return None
        cell = 16
        img = np.full((cell, cell * self.length, 3), 200, np.uint8)
        img[:, cell * (self.length - 1):] = (60, 170, 60)
        img[:, cell * self.pos:cell * (self.pos + 1)] = (200, 40, 40)
        img[:, ::cell] = 90  # cell borders
        return img


def _register() -> None:
    if "Corridor-v0" not in gym.envs.registry:
        gym.register(id="Corridor-v0", entry_point="rlrun_reinforce.envs:Corridor",
                     max_episode_steps=400, kwargs={"length": 10})


_register()
