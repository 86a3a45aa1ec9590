"""Gymnasium ids of the project's tabular envs (`rlrun/...`)."""

from __future__ import annotations

from contextlib import suppress

import gymnasium

# id -> (module:class, max_episode_steps). The continuing tasks (Gridworld, JacksCarRental)
# never end: their cap makes an episode of a sampling loop, 1,000 steps (0.9^1000 ~ 1e-46).
_ENVS: dict[str, tuple[str, int | None]] = {
    "rlrun/RandomWalk-v0": ("book:RandomWalkEnv", None),
    "rlrun/MaximizationBias-v0": ("book:MaximizationBiasEnv", 100),
    "rlrun/WindyGridworld-v0": ("book:WindyGridworldEnv", 10_000),
    "rlrun/CliffWalkingBook-v0": ("book:CliffWalkingBookEnv", 10_000),
    "rlrun/Gridworld-v0": ("planning:GridworldEnv", 1_000),
    "rlrun/SmallGridworld-v0": ("planning:SmallGridworldEnv", 10_000),
    "rlrun/JacksCarRental-v0": ("planning:JacksCarRentalEnv", 1_000),
    "rlrun/GamblersProblem-v0": ("planning:GamblersProblemEnv", 10_000),
    "rlrun/BlackjackBook-v0": ("blackjack:BlackjackBookEnv", None),
}


def register_envs() -> None:
    """Register the project's tabular envs with Gymnasium; safe to call any number of times."""
    for env_id, (cls, max_steps) in _ENVS.items():
        if env_id in gymnasium.registry:
            continue
        with suppress(gymnasium.error.RegistrationError):
            gymnasium.register(id=env_id, entry_point=f"rlrun.envs.tabular.{cls}",
                               max_episode_steps=max_steps)

