"""Gymnasium ids of the project's tabular envs (`rlrun/...`)."""

from __future__ import annotations

from contextlib import suppress

import gymnasium

_ENVS: dict[str, tuple[str, int | None]] = {
    "rlrun/RandomWalk-v0": ("RandomWalkEnv", None),
    "rlrun/MaximizationBias-v0": ("MaximizationBiasEnv", 100),
    "rlrun/WindyGridworld-v0": ("WindyGridworldEnv", 10_000),
    "rlrun/CliffWalkingBook-v0": ("CliffWalkingBookEnv", 10_000),
}


def register_envs() -> None:
    """Register the project's tabular envs with Gymnasium; safe to call any number of times."""
    for env_id, (cls, max_steps) in _ENVS.items():
        if env_id in gymnasium.registry:
            continue
        with suppress(gymnasium.error.RegistrationError):
            gymnasium.register(id=env_id, entry_point=f"rlrun.envs.tabular.book:{cls}",
                               max_episode_steps=max_steps)

