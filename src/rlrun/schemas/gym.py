"""Settings of a Gymnasium task (`env=CartPole-v1`, `env=gym env.id=...`, `env=ALE/...`),
played by the deep RL loops as a vector env (rlrun.envs.gym builds it).

Torch-free and Gymnasium-free at import: read at CLI start-up. Building the dataclass checks
the id and `kwargs` against Gymnasium's registry (rlrun.envs.gym, imported then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlrun.core.errors import ConfigError
from rlrun.core.schema import EnvSchema, check_fields, opt


@dataclass
class AtariOptions:
    """The standard DQN preprocessing of `ALE/...` ids (Machado et al. 2018 settings aside:
    v5 ids keep their sticky actions, `env.kwargs.repeat_action_probability=0` removes them).
    Gymnasium's AtariPreprocessing does no-op starts, frame skip with max-pooling, 84x84
    grayscale; FrameStackObservation stacks frames; rewards are clipped by Gymnasium's
    vector ClipReward outside the episode statistics, so `charts/episodic_return` is the
    game score. `episodic_life`: a lost life is a terminal for the learner only (the game
    goes on, as in the DQN paper); Gymnasium's own `terminal_on_life_loss` would reset the
    whole game at every lost life."""

    noop_max: int = opt(30, "up to this many no-op actions after a reset", ge=0)
    frame_skip: int = opt(4, "emulator frames per agent step (the last two max-pooled)", ge=1)
    screen_size: int = opt(84, "frames resized to screen_size x screen_size", ge=1)
    grayscale: bool = opt(True, "grayscale frames (else RGB)")
    frame_stack: int = opt(4, "frames stacked into one observation", ge=1)
    episodic_life: bool = opt(True, "a lost life ends the learner's episode (the game goes on)")
    clip_reward: bool = opt(True, "rewards clipped to [-1, 1] for learning; scores are logged"
                                  " unclipped")


@dataclass
class GymEnvConfig(EnvSchema):
    id: str = opt("CartPole-v1", "a registered Gymnasium id, or `module:EnvId` (importing the"
                                 " module registers it)")
    kwargs: dict[str, Any] = opt(factory=dict, help="passed to gymnasium.make (checked against"
                                                    " the env's constructor)")
    num_envs: int | None = opt(None, "parallel copies; null: the algorithm's default", ge=1)
    vectorization: str = opt("sync", "sync (one process) or async (a process per copy; slower"
                                     " for cheap envs on few cores)", choices=("sync", "async"))
    max_episode_steps: int | None = opt(None, "time limit in agent steps; null: the id's"
                                              " registered limit", ge=1)
    atari: AtariOptions = opt(factory=AtariOptions, help="ALE/... ids only: the standard"
                                                         " Atari preprocessing")

    def __post_init__(self) -> None:
        super().__post_init__()
        try:  # the nested options' bounds (check_fields reads one level)
            check_fields(AtariOptions, vars(self.atari))
        except ConfigError as e:
            raise ConfigError(f"atari.{e}") from None
        from rlrun.envs.gym import check_kwargs, ensure_registered

        ensure_registered(self.id)
        check_kwargs(self.id, self.kwargs)
