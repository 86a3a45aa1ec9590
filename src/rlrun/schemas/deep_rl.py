"""Settings of the deep RL loops: SAC, PPO, DQN, TD3/DDPG and A2C (rlrun.algos.*).

What they declare alike (Gymnasium tasks, torch networks built from `in_dim` and `out_dim`,
episodic returns as the headline, deterministic evaluation as the objective) is one
`gym_spec(...)`; a setting several of them share (the budget, gamma, the replay and
evaluation cadences...) has one help text and one bound in `COMMON`. Torch-free: read at
CLI start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from rlrun.core.errors import ConfigError
from rlrun.core.schema import AlgoSchema, AlgoSpec, opt


def gym_spec(**changes: Any) -> AlgoSpec:
    """The declarations of a deep RL algorithm (rlrun.core.schema.AlgoSpec), with `changes`
    (its action spaces, what to suggest instead, its default number of envs)."""
    return AlgoSpec(**{
        "task_kinds": ("gym",), "objective": "eval/return", "goal": "max",
        "headline": "charts/episodic_return",
        "logged_tags": ("charts/*", "losses/*", "eval/return", "eval/length"),
        "network_inputs": ("in_dim", "out_dim"),  # what build_network passes
        **changes})


# The settings of more than one loop: (help, bounds); the default is each loop's own.
COMMON: dict[str, tuple[str, dict[str, float]]] = {
    "total_steps": ("env steps, all env copies together", {"ge": 1}),
    "gamma": ("discount factor", {"ge": 0, "le": 1}),
    "tau": ("Polyak rate of the target networks (1: hard copies)", {"gt": 0, "le": 1}),
    "buffer_size": ("replay capacity in transitions (at most total_steps are kept)",
                    {"ge": 1}),
    "batch_size": ("transitions per gradient step", {"ge": 1}),
    "learning_starts": ("env steps of uniformly random actions before learning begins",
                        {"ge": 0}),
    "train_frequency": ("env steps between training phases", {"ge": 1}),
    "gradient_steps": ("gradient steps (critic updates) per training phase", {"ge": 1}),
    "learning_rate": ("the optimiser's step size", {"gt": 0}),
    "anneal_lr": ("the learning rate decays linearly to 0 over the run", {}),
    "num_steps": ("steps of each env copy per rollout", {"ge": 1}),
    "gae_lambda": ("GAE(lambda) of the advantages (1: n-step returns)", {"ge": 0, "le": 1}),
    "ent_coef": ("weight of the entropy bonus", {"ge": 0}),
    "vf_coef": ("weight of the value loss", {"ge": 0}),
    "max_grad_norm": ("gradient norm clipped to this before each step", {"gt": 0}),
    "log_std_init": ("Box actions: the policy's initial log standard deviation", {}),
    "eval_every": ("env steps between deterministic evaluations (0: at the end only)",
                   {"ge": 0}),
    "eval_episodes": ("episodes per evaluation (seeded seed + 10000 + i, the same each time)",
                      {"ge": 1}),
    "log_every": ("env steps between loss logs (each one a host sync)", {"ge": 1}),
    "compile": ("torch.compile the losses (CUDA graphs on GPU)", {}),
}


def common(name: str, default: Any, note: str = "") -> Any:
    """The field `name` of `COMMON` with this loop's default (and a note on its help)."""
    help_text, bounds = COMMON[name]
    return opt(default, help_text + note, **bounds)


def check_replay(cfg: Any) -> None:
    """The off-policy loops' (SAC, TD3/DDPG, DQN) budget checks: a batch must fit the replay
    buffer, and learning must start before the budget runs out."""
    if cfg.batch_size > cfg.buffer_size:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than algo.buffer_size="
                          f"{cfg.buffer_size}: lower algo.batch_size or raise algo.buffer_size")
    if cfg.learning_starts >= cfg.total_steps:
        raise ConfigError(f"learning_starts={cfg.learning_starts} >= algo.total_steps="
                          f"{cfg.total_steps}: it would never learn; lower"
                          " algo.learning_starts or raise algo.total_steps")


def fast_path_opt(module: str, acts: tuple[str, ...] = ("tanh", "relu")) -> Any:
    """`algo.fast_path` of a loop with a CPU speed path in rlrun/fast/<module>.py, for MLPs
    of the activations `acts` (in the field's metadata: the preflight refuses `on` for
    others before a run dir exists)."""
    f = opt("auto", f"CPU speed path, the same numbers (src/rlrun/fast/{module}.py): auto ="
                    f" on for a CPU with a {'/'.join(acts)} MLP, off on GPU or compiled; on |"
                    " off force it", choices=("auto", "on", "off"))
    return dataclasses.field(default=f.default, metadata={**f.metadata, "activations": acts})


def check_fast_path(cfg: Any) -> None:
    """The fast paths are plain code in fewer calls, not compiled: `on` with compile is a
    contradiction, refused when the config is composed."""
    if cfg.fast_path == "on" and cfg.compile:
        raise ConfigError("fast_path=on and compile=true: the fast path is not compiled; "
                          "use fast_path=auto or off")


ANNEAL_LR = ("algo.anneal_lr: the learning rate now anneals to 0 at the new total_steps (it"
             " steps up where the run resumes)")


@dataclass
class SACConfig(AlgoSchema):
    """Soft Actor-Critic (loop: rlrun.algos.sac)."""

    spec: ClassVar[AlgoSpec] = gym_spec(action_spaces=("continuous",),
                                        suggest={"discrete": "ppo"})
    # runs saved before the fast path kept one Adam state per parameter, not a packed one
    saved_before: ClassVar[dict[str, Any]] = {"fast_path": "off"}

    variant: str = opt("v2", "v2: twin Q, targets, automatic entropy tuning; v1: the 2018"
                             " paper's soft V network as well", choices=("v1", "v2"))
    total_steps: int = common("total_steps", 20_000)
    buffer_size: int = common("buffer_size", 1_000_000)
    batch_size: int = common("batch_size", 256)
    gamma: float = common("gamma", 0.99)
    tau: float = common("tau", 0.005)
    learning_starts: int = common("learning_starts", 5_000)
    policy_lr: float = opt(3e-4, "the actor's Adam step size", gt=0)
    q_lr: float = opt(1e-3, "the critics' Adam step size (and alpha's, when autotuned)", gt=0)
    value_lr: float = opt(3e-4, "v1 only: the V network's step size", gt=0)
    policy_frequency: int = opt(2, "the actor (and alpha) is updated N times every N critic"
                                   " updates", ge=1)
    target_network_frequency: int = opt(1, "critic updates between Polyak updates of the"
                                           " targets", ge=1)
    train_frequency: int = common("train_frequency", 1)
    gradient_steps: int = common("gradient_steps", 1)
    alpha: float = opt(0.2, "the entropy coefficient when autotune=false, its start value"
                            " otherwise", gt=0)
    autotune: bool = opt(True, "tune alpha toward target_entropy")
    target_entropy: float | None = opt(None, "the entropy autotune aims at; null: -|A|")
    log_std_min: float = opt(-5.0, "the actor's smallest log standard deviation")
    log_std_max: float = opt(2.0, "the actor's largest log standard deviation")
    eval_every: int = common("eval_every", 5_000)
    eval_episodes: int = common("eval_episodes", 10)
    log_every: int = common("log_every", 100)
    noise_rho: float = opt(0.0, "AR(1) correlation of the behaviour noise across env steps:"
                                " 0 independent (SAC as published); ~0.9 temporally correlated"
                                " exploration that finds sparse rewards (MountainCarContinuous's"
                                " flag), marginals unchanged", ge=0, lt=1)
    compile: bool = common("compile", False)
    fast_path: str = fast_path_opt("sac_cpu", ("relu",))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.log_std_min >= self.log_std_max:
            raise ConfigError(f"log_std_min={self.log_std_min} must be < log_std_max="
                              f"{self.log_std_max}")
        check_replay(self)
        check_fast_path(self)


@dataclass
class TD3Config(AlgoSchema):
    """TD3, and DDPG as TD3 with its three fixes off (loop: rlrun.algos.td3)."""

    spec: ClassVar[AlgoSpec] = gym_spec(action_spaces=("continuous",),
                                        suggest={"discrete": "dqn (or ppo, a2c)"})
    # runs saved before the fast path kept one Adam state per parameter, not a packed one
    saved_before: ClassVar[dict[str, Any]] = {"fast_path": "off"}

    total_steps: int = common("total_steps", 1_000_000)
    buffer_size: int = common("buffer_size", 1_000_000)
    batch_size: int = common("batch_size", 256)
    learning_rate: float = common("learning_rate", 3e-4, " (Adam; actor and critics)")
    gamma: float = common("gamma", 0.99)
    tau: float = common("tau", 0.005)
    learning_starts: int = common("learning_starts", 25_000)
    exploration_noise: float = opt(0.1, "std of the Gaussian added to actions, in half action"
                                        " ranges", ge=0)
    n_critics: int = opt(2, "critics, the target takes their minimum (TD3 2, DDPG 1)", ge=1)
    policy_noise: float = opt(0.2, "target policy smoothing std, in half action ranges (0:"
                                   " none, as DDPG)", ge=0)
    noise_clip: float = opt(0.5, "the smoothing noise is clipped to +-noise_clip half ranges",
                            ge=0)
    policy_frequency: int = opt(2, "critic updates per actor and target update (DDPG 1)", ge=1)
    train_frequency: int = common("train_frequency", 1)
    gradient_steps: int = common("gradient_steps", 1)
    eval_every: int = common("eval_every", 5_000)
    eval_episodes: int = common("eval_episodes", 10)
    log_every: int = common("log_every", 100)
    compile: bool = common("compile", False)
    fast_path: str = fast_path_opt("td3_cpu", ("relu",))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_replay(self)
        check_fast_path(self)


@dataclass
class DQNConfig(AlgoSchema):
    """DQN and Double DQN (loop: rlrun.algos.dqn)."""

    spec: ClassVar[AlgoSpec] = gym_spec(action_spaces=("discrete",),
                                        suggest={"continuous": "td3 (or sac, ddpg)"})
    # runs saved before the fast path kept six Adam states, not one packed one
    saved_before: ClassVar[dict[str, Any]] = {"fast_path": "off"}

    total_steps: int = common("total_steps", 500_000)
    buffer_size: int = common("buffer_size", 100_000)
    batch_size: int = common("batch_size", 128)
    learning_rate: float = common("learning_rate", 2.5e-4, " (Adam)")
    anneal_lr: bool = common("anneal_lr", False)
    gamma: float = common("gamma", 0.99)
    tau: float = common("tau", 1.0)
    target_network_frequency: int = opt(500, "env steps between target updates", ge=1)
    start_e: float = opt(1.0, "epsilon when the linear decay starts", ge=0, le=1)
    end_e: float = opt(0.05, "epsilon after the decay", ge=0, le=1)
    exploration_fraction: float = opt(0.5, "the fraction of total_steps epsilon decays over",
                                      gt=0, le=1)
    learning_starts: int = common("learning_starts", 10_000)
    train_frequency: int = common("train_frequency", 10)
    gradient_steps: int = common("gradient_steps", 1)
    double: bool = opt(False, "Double DQN: the online network picks the next action")
    max_grad_norm: float = common("max_grad_norm", 10.0)
    eval_epsilon: float = opt(0.0, "epsilon of evaluation episodes (0: greedy; 0.05 on Atari,"
                                   " where a greedy agent may never press FIRE)", ge=0, le=1)
    eval_every: int = common("eval_every", 10_000)
    eval_episodes: int = common("eval_episodes", 10)
    log_every: int = common("log_every", 100)
    compile: bool = common("compile", False)
    fast_path: str = fast_path_opt("dqn_cpu")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_replay(self)
        check_fast_path(self)

    def budget_schedules(self) -> list[str]:
        return ["algo.exploration_fraction: epsilon now decays over that fraction of the new"
                " total_steps", *([ANNEAL_LR] if self.anneal_lr else [])]


@dataclass
class PPOConfig(AlgoSchema):
    """PPO with the clipped surrogate (loop: rlrun.algos.ppo)."""

    spec: ClassVar[AlgoSpec] = gym_spec(action_spaces=("discrete", "continuous"),
                                        default_num_envs=4)

    total_steps: int = common("total_steps", 100_000, " (copies: env.num_envs, 4 if null)")
    num_steps: int = common("num_steps", 128)
    learning_rate: float = common("learning_rate", 2.5e-4, " (Adam)")
    anneal_lr: bool = common("anneal_lr", True)
    gamma: float = common("gamma", 0.99)
    gae_lambda: float = common("gae_lambda", 0.95)
    num_minibatches: int = opt(4, "minibatches each rollout is split into", ge=1)
    update_epochs: int = opt(4, "passes over each rollout", ge=1)
    norm_adv: bool = opt(True, "normalise the advantages of each minibatch")
    clip_coef: float = opt(0.2, "clip range of the probability ratio (and of the value change)",
                           gt=0)
    anneal_clip: bool = opt(False, "the clip range decays linearly to 0 (rl-zoo's schedule)")
    clip_vloss: bool = opt(True, "clip the value loss as well")
    ent_coef: float = common("ent_coef", 0.01)
    vf_coef: float = common("vf_coef", 0.5)
    max_grad_norm: float = common("max_grad_norm", 0.5)
    target_kl: float | None = opt(None, "stop an update's epochs once the approximate KL to the"
                                        " rollout policy passes it (e.g. 0.015); null: never",
                                  gt=0)
    normalize_obs: bool = opt(False, "running mean/std of observations (saved with checkpoints,"
                                     " used in evaluation)")
    normalize_reward: bool = opt(False, "scale rewards by the running std of the discounted"
                                        " return")
    clip_obs: float = opt(10.0, "normalised observations are clipped to +-clip_obs", gt=0)
    clip_reward: float = opt(10.0, "normalised rewards are clipped to +-clip_reward", gt=0)
    log_std_init: float = common("log_std_init", 0.0)
    eval_every: int = common("eval_every", 10_000)
    eval_episodes: int = common("eval_episodes", 10)
    compile: bool = common("compile", False)
    fast_path: str = fast_path_opt("ppo_cpu")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fast_path(self)

    def check_env(self, env: Any, data: bool = True) -> None:
        """Each minibatch of a rollout (num_steps x the env copies) holds >= 2 steps: the
        advantages are normalised per minibatch."""
        n_envs = getattr(env, "num_envs", None) or self.spec.default_num_envs or 1
        batch = self.num_steps * n_envs
        if batch // self.num_minibatches < 2:
            raise ConfigError(
                f"algo.num_minibatches={self.num_minibatches} splits each rollout of {batch}"
                f" steps (algo.num_steps={self.num_steps} x env.num_envs={n_envs}) into"
                f" minibatches of {batch // self.num_minibatches}: set algo.num_minibatches"
                f" <= {max(1, batch // 2)} or raise algo.num_steps")

    def budget_schedules(self) -> list[str]:
        return [what for on, what in (
            (self.anneal_lr, ANNEAL_LR),
            (self.anneal_clip, "algo.anneal_clip: the clip range now anneals over the new"
                               " total_steps")) if on]


@dataclass
class A2CConfig(AlgoSchema):
    """Synchronous advantage actor-critic (loop: rlrun.algos.a2c)."""

    spec: ClassVar[AlgoSpec] = gym_spec(action_spaces=("discrete", "continuous"),
                                        default_num_envs=8)

    total_steps: int = common("total_steps", 500_000, " (copies: env.num_envs, 8 if null)")
    num_steps: int = common("num_steps", 5, " (the n of the n-step returns)")
    learning_rate: float = common("learning_rate", 7e-4)
    anneal_lr: bool = common("anneal_lr", False)
    optimizer: str = opt("rmsprop", "rmsprop (alpha 0.99, as the paper and SB3) or adam",
                         choices=("rmsprop", "adam"))
    rms_eps: float = opt(1e-5, "the optimiser's epsilon", gt=0)
    gamma: float = common("gamma", 0.99)
    gae_lambda: float = common("gae_lambda", 1.0)
    normalize_advantage: bool = opt(False, "normalise the advantages of each update")
    ent_coef: float = common("ent_coef", 0.0)
    vf_coef: float = common("vf_coef", 0.5)
    max_grad_norm: float = common("max_grad_norm", 0.5)
    shared: bool = opt(False, "one torso for policy and value (else two networks, run fused)")
    log_std_init: float = common("log_std_init", 0.0)
    eval_every: int = common("eval_every", 20_000)
    eval_episodes: int = common("eval_episodes", 10)
    log_every: int = common("log_every", 1_000)
    compile: bool = common("compile", False)

    def budget_schedules(self) -> list[str]:
        return [ANNEAL_LR] if self.anneal_lr else []
