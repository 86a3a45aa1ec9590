"""DQN (+Atari), DDPG, TD3 and A2C: losses by hand, frame replay, smoke runs, resume, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rlrun.algos.a2c import a2c_loss
from rlrun.algos.dqn import DQNConfig, dqn_loss, epsilon, td_target
from rlrun.algos.td3 import critic_loss, smoothed_target_action
from rlrun.core.errors import ConfigError, PairingError
from rlrun.rl.buffers import FrameReplayBuffer
from rlrun.testing import assert_same_state

from .conftest import compose_cfg, interrupt_and_resume, run_train

FAST = ["threads=1", "checkpoint_every_s=0"]


class _Table(nn.Module):
    """Q values looked up by the (integer) observation: a network with known outputs."""

    def __init__(self, rows):
        super().__init__()
        self.t = torch.tensor(rows, dtype=torch.float32)

    def forward(self, obs):
        return self.t[obs[:, 0].long()]


# ---- losses on hand-computed values ---------------------------------------------------------
def test_dqn_and_double_dqn_targets_by_hand():
    online = _Table([[0, 2, 0], [3, 0, 0], [1, 5, 3], [2, 0, 1]])
    target = _Table([[9, 9, 9], [9, 9, 9], [4, 2, 6], [1, 3, 7]])
    next_obs, r, done = torch.tensor([[2], [3]]), torch.tensor([1.0, 0.5]), torch.tensor([0., 1.])
    # DQN: max_a Q'(s', a) = 6 (and 7, cut by the terminal): 1 + 0.9 * 6 = 6.4, 0.5
    assert td_target(online, target, next_obs, r, done, 0.9, False).tolist() == \
        pytest.approx([6.4, 0.5])
    # Double DQN: the online net picks a* = 1 (Q = 5), the target scores it: Q'(s', 1) = 2
    assert td_target(online, target, next_obs, r, done, 0.9, True).tolist() == \
        pytest.approx([1 + 0.9 * 2, 0.5])
    b = {"obs": torch.tensor([[0], [1]]), "actions": torch.tensor([1, 0]),
         "next_obs": next_obs, "rewards": r, "terminated": done}
    # Q(s, a) = 2, 3; errors -4.4 and 2.5 are past Huber's kink: |e| - 0.5 -> 3.9, 2.0
    out = dqn_loss(online, target, b, 0.9, False)
    assert float(out["td"]) == pytest.approx((3.9 + 2.0) / 2)
    # Double: error 2 - 2.8 = -0.8 is inside the kink (0.5 e^2 = 0.32); 2.5 gives 2.0
    assert float(dqn_loss(online, target, b, 0.9, True)["td"]) == pytest.approx((0.32 + 2) / 2)


def test_epsilon_decays_linearly_then_stays():
    cfg = DQNConfig(total_steps=1000, learning_starts=0, start_e=1.0, end_e=0.1,
                    exploration_fraction=0.5)
    assert [epsilon(s, cfg) for s in (0, 250, 500, 900)] == pytest.approx([1, 0.55, 0.1, 0.1])


class _ConstActor(nn.Module):
    def __init__(self, actions, low, high):
        super().__init__()
        self.a = torch.tensor(actions)
        self.register_buffer("scale", (torch.tensor(high) - torch.tensor(low)) / 2)
        self.register_buffer("bias", (torch.tensor(high) + torch.tensor(low)) / 2)

    def forward(self, obs):
        return self.a


def test_td3_target_policy_smoothing_is_clipped_twice(monkeypatch):
    # box [-2, 2] (half range 2); mu'(s') = 1.5, 0, -1; the Gaussian draws 3, -0.1, -10
    actor = _ConstActor([[1.5], [0.0], [-1.0]], [-2.0], [2.0])
    monkeypatch.setattr(torch, "randn_like", lambda t: torch.tensor([[3.0], [-0.1], [-10.0]]))
    a = smoothed_target_action(actor, torch.zeros(3, 1), policy_noise=0.2, noise_clip=0.5)
    # noise 0.2 * draw = 0.6, -0.02, -2 -> clipped to +-0.5 -> x2 = 1.0, -0.04, -1.0;
    # 1.5 + 1 = 2.5 and -1 - 1 = -2 -> clipped to the box
    assert a[:, 0].tolist() == pytest.approx([2.0, -0.04, -2.0])
    assert torch.equal(smoothed_target_action(actor, torch.zeros(3, 1), 0.0, 0.5), actor.a)

    class TwinQ(nn.Module):  # Q'_1 = 1 + a, Q'_2 = 3 - a: the target takes the smaller
        def forward(self, obs, act):
            return torch.stack([1 + act[:, 0], 3 - act[:, 0]])

    class Online(nn.Module):
        def forward(self, obs, act):
            return torch.zeros(2, len(obs))

    nets = {"actor_target": actor, "qf_target": TwinQ(), "qf": Online()}
    b = {"obs": torch.zeros(3, 1), "actions": torch.zeros(3, 1), "next_obs": torch.zeros(3, 1),
         "rewards": torch.tensor([1.0, 0.0, 2.0]), "terminated": torch.tensor([0.0, 0.0, 1.0])}
    out = critic_loss(nets, b, gamma=0.5, policy_noise=0.2, noise_clip=0.5)
    # min(1 + a, 3 - a) at a = 2, -0.04: 1, 0.96 -> targets 1.5, 0.48, 2 (terminal)
    target = torch.tensor([1.5, 0.48, 2.0])
    assert float(out["qf1"]) == pytest.approx(float(target.pow(2).mean()))
    assert float(out["critic"]) == pytest.approx(2 * float(target.pow(2).mean()))


def test_first_critic_is_the_first_member_of_the_fused_critics():
    from rlrun.algos.td3 import first_critic
    from rlrun.nets.actor_critic import QEnsemble
    from rlrun.nets.mlp import MLP

    torch.manual_seed(0)
    q = QEnsemble([MLP(4, 1, [8, 8]) for _ in range(2)])
    obs, act = torch.randn(5, 3), torch.randn(5, 1)
    assert torch.allclose(first_critic(q, obs, act), q(obs, act)[0], atol=1e-6)


def test_a2c_loss_by_hand():
    class Fixed:
        def evaluate(self, obs, actions):
            return (torch.log(torch.tensor([0.5, 0.25])), torch.tensor([0.6, 0.2]),
                    torch.tensor([1.0, 2.0]))

    b = {"obs": torch.zeros(2, 1), "actions": torch.zeros(2), "adv": torch.tensor([2.0, -1.0]),
         "returns": torch.tensor([3.0, 0.0])}
    out = a2c_loss(Fixed(), b, ent_coef=0.1, vf_coef=0.5, norm_adv=False)
    policy = -(2 * np.log(0.5) - np.log(0.25)) / 2
    assert float(out["policy"]) == pytest.approx(policy)
    assert float(out["value"]) == pytest.approx((4 + 4) / 2)
    assert float(out["loss"]) == pytest.approx(policy + 0.5 * 4 - 0.1 * 0.4)


# ---- the frame-once replay buffer ------------------------------------------------------------
def _stack(history, s):
    """What FrameStackObservation returns: the last s frames, the first one repeated."""
    h = history[-s:]
    return np.stack([h[0]] * (s - len(h)) + h)


def test_frame_replay_rebuilds_stacks_across_episodes_and_wraparound():
    rng = np.random.default_rng(0)
    n, s, cap = 2, 3, 40
    rb = FrameReplayBuffer(cap, n, s, (2, 2), "cpu")
    counter = iter(range(1, 10**6))

    def frame():  # each frame unique: its pixels spell its number
        c = next(counter)
        return np.array([[c % 256, c // 256], [0, 0]], np.uint8)

    hist = [[frame()] for _ in range(n)]
    rb.start(np.stack([h[-1] for h in hist]))
    seen = {}
    for t in range(150):  # ~4 stream lengths: wraps around several times
        obs = [_stack(h, s) for h in hist]
        done = rng.random(n) < 0.15
        new = [frame() for _ in range(n)]
        nxt = [_stack(h + [f], s) for h, f in zip(hist, new, strict=True)]
        resets = [frame() if d else f for d, f in zip(done, new, strict=True)]
        actions = rng.integers(0, 4, n)
        rb.add(actions, np.full(n, t, np.float32), done & (rng.random(n) < 0.5),
               np.stack(new), done, np.stack(resets))
        for i in range(n):
            seen[(t, i)] = (obs[i], nxt[i], actions[i])
            hist[i] = [resets[i]] if done[i] else hist[i] + [new[i]]
    b = rb.sample(512)
    for o, nx, a, r in zip(b["obs"].numpy(), b["next_obs"].numpy(), b["actions"],
                           b["rewards"], strict=True):
        match = [k for k in seen if k[0] == int(r) and np.array_equal(seen[k][0], o)]
        assert match, "a sampled stack that the env never showed"
        assert np.array_equal(seen[match[0]][1], nx) and seen[match[0]][2] == int(a)
    sampled_t = {int(r) for r in b["rewards"]}
    assert max(sampled_t) >= 145 and min(sampled_t) >= 150 - rb.length  # no stale ones
    assert rb.frames.dtype == torch.uint8


# ---- runs ------------------------------------------------------------------------------------
def test_dqn_smoke_logs_epsilon_and_double(tmp_path):
    res = run_train(tmp_path, [*FAST, "algo=dqn", "algo.total_steps=600",
                               "algo.learning_starts=200", "algo.train_frequency=4",
                               "algo.gradient_steps=2", "algo.batch_size=16",
                               "algo.double=true", "algo.tau=0.5", "algo.eval_every=300",
                               "algo.eval_episodes=1", "network.hidden_sizes=[32]"])
    for tag in ("losses/td", "losses/q_values", "charts/epsilon", "charts/SPS",
                "charts/episodic_return", "eval/return"):
        assert tag in res["metrics"], tag
    assert res["metrics"]["charts/epsilon"]["last"] < 1.0
    assert res["steps"] == 600 and res["metrics"]["eval/return"]["count"] == 2


@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_td3_and_ddpg_smoke(tmp_path, algo):
    res = run_train(tmp_path, [*FAST, f"algo={algo}", "algo.total_steps=400",
                               "algo.learning_starts=200", "algo.batch_size=16",
                               "algo.eval_episodes=1", "network.hidden_sizes=[32]"])
    assert {"losses/qf1", "losses/actor", "eval/return"} <= set(res["metrics"])
    assert ("losses/qf2" in res["metrics"]) == (algo == "td3")
    assert res["steps"] == 400


def test_a2c_smoke_discrete_shared_and_continuous(tmp_path):
    res = run_train(tmp_path, [*FAST, "algo=a2c", "algo.total_steps=800", "algo.shared=true",
                               "algo.gae_lambda=0.9", "algo.eval_episodes=1"], "d")
    for tag in ("losses/policy", "losses/value", "losses/entropy", "eval/return"):
        assert tag in res["metrics"], tag
    res = run_train(tmp_path, [*FAST, "algo=a2c", "env=Pendulum-v1", "algo.total_steps=800",
                               "algo.optimizer=adam", "algo.eval_episodes=1"], "c")
    assert res["metrics"]["eval/length"]["last"] == 200


def test_tuned_presets_are_picked_up():
    cfg = compose_cfg(["algo=dqn"])
    assert (cfg.algo.train_frequency, cfg.algo.gradient_steps, cfg.algo.total_steps) == \
        (256, 128, 50000)
    assert compose_cfg(["algo=td3"]).network.hidden_sizes == [400, 300]
    assert compose_cfg(["algo=ddpg"]).algo.gamma == 0.98
    assert compose_cfg(["algo=a2c"]).env.num_envs == 8


@pytest.mark.parametrize("algo", ["dqn", "td3", "ddpg", "a2c"])
def test_resume_continues_exactly(tmp_path, monkeypatch, algo):
    """Stopped mid-run and resumed: the same logged numbers and the same checkpointed state
    (networks, optimisers, replay, RNGs, envs) as the run without the stop, bit for bit."""
    args = [*FAST, f"algo={algo}", "deterministic=true", "algo.eval_episodes=1"]
    if algo == "a2c":
        args += ["algo.total_steps=1600", "algo.eval_every=800", "algo.log_every=40"]
        stop = 600
    else:
        args += ["algo.total_steps=500", "algo.learning_starts=150", "algo.batch_size=16",
                 "algo.log_every=20", "algo.eval_every=250", "network.hidden_sizes=[16]"]
        args += ["algo.train_frequency=2", "algo.gradient_steps=1",
                 "algo.target_network_frequency=50"] \
            if algo == "dqn" else []
        stop = 333
    a = run_train(tmp_path, args, "a")
    b = interrupt_and_resume(tmp_path, monkeypatch, args, stop)
    for r in (a, b):
        r["metrics"].pop("charts/SPS")
    assert b["metrics"] == a["metrics"]
    assert_same_state(tmp_path / "a", tmp_path / "b")


# ---- Atari -----------------------------------------------------------------------------------
def test_atari_stacks_rebuilt_from_single_frames_match_the_env():
    pytest.importorskip("ale_py", reason="Atari needs pip install 'rlrun[atari]'")
    from rlrun.envs.gym import make_vector_env
    from rlrun.schemas.gym import GymEnvConfig

    envs = make_vector_env(GymEnvConfig(id="ALE/Breakout-v5", max_episode_steps=60), 2, 0)
    rb = FrameReplayBuffer(1000, 2, 4, (84, 84), "cpu")
    obs, _ = envs.reset(seed=0)
    rb.start(obs[:, -1])
    shown, rng = [], np.random.default_rng(0)
    for t in range(150):  # a few hundred frames, two episodes cut by the time limit each
        a = rng.integers(0, 4, 2)
        nxt, r, term, trunc, infos = envs.step(a)
        done = term | trunc
        real = nxt.copy()
        if done.any():
            real[done] = np.stack(infos["final_obs"][done])
        rb.add(a, np.full(2, t, np.float32), term, real[:, -1], done, nxt[:, -1])
        shown += [(obs[i], real[i]) for i in range(2)]
        obs = nxt
    envs.close()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert rb.nbytes() < 1000 / 2 * 2 * 84 * 84 * 1.2  # one frame per transition
    b = rb.sample(64)
    for o, nx, r in zip(b["obs"].numpy(), b["next_obs"].numpy(), b["rewards"], strict=True):
        so, sn = shown[2 * int(r)], shown[2 * int(r) + 1]
        assert any(np.array_equal(o, x[0]) and np.array_equal(nx, x[1]) for x in (so, sn))


def test_atari_dqn_trains_checkpoints_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("ale_py", reason="Atari needs pip install 'rlrun[atari]'")
    args = [*FAST, "algo=dqn", "env=ALE/Breakout-v5", "network=nature_cnn",
            "algo.total_steps=240", "algo.learning_starts=100", "algo.batch_size=8",
            "algo.train_frequency=4", "algo.eval_every=0", "algo.eval_episodes=1",
            "algo.log_every=20", "env.max_episode_steps=100"]
    res = interrupt_and_resume(tmp_path, monkeypatch, args, 150, "run")
    assert res["status"] == "completed" and res["steps"] == 240
    assert {"losses/td", "charts/epsilon", "eval/return"} <= set(res["metrics"])
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


# ---- errors ----------------------------------------------------------------------------------
def test_pairing_errors_suggest_a_fitting_algorithm(tmp_path):
    with pytest.raises(PairingError, match=r"discrete action space.*try algo=td3"):
        run_train(tmp_path, ["algo=dqn", "env=Pendulum-v1"])
    for algo in ("td3", "ddpg"):
        with pytest.raises(PairingError, match=r"continuous action space.*try algo=dqn"):
            run_train(tmp_path, [f"algo={algo}", "env=CartPole-v1"])


def test_network_must_fit_the_observations(tmp_path):
    # checked by the shapes a network declares it takes (input_ranks), before it is built:
    # by the preflight, before a run dir exists
    with pytest.raises(ConfigError, match=r"observes vectors of shape \(4,\), which network"
                                          r".*NatureCNN does not take \(it takes images\): use "
                                          r"network=mlp"):
        run_train(tmp_path, [*FAST, "algo=dqn", "network=nature_cnn"])
    with pytest.raises(ConfigError, match="optimizer"):
        run_train(tmp_path, ["algo=a2c", "algo.optimizer=sgd"])


def test_atari_with_an_mlp_asks_for_the_cnn(tmp_path):
    pytest.importorskip("ale_py", reason="Atari needs pip install 'rlrun[atari]'")
    with pytest.raises(ConfigError, match="network=nature_cnn"):
        run_train(tmp_path, [*FAST, "algo=dqn", "env=ALE/Breakout-v5"])


# ---- learning on small budgets ---------------------------------------------------------------
@pytest.mark.slow
def test_dqn_learns_cartpole(tmp_path):
    res = run_train(tmp_path, [*FAST, "algo=dqn", "algo.total_steps=20000",
                               "algo.eval_every=0"])
    assert res["metrics"]["eval/return"]["last"] >= 150  # random play scores about 20


@pytest.mark.slow
def test_dqn_on_cartpole_is_as_stable_as_the_zoos(tmp_path):
    # issue 27: rl-zoo's preset, 50k steps, at least 4 of seeds 0-4 at 475 or more (measured:
    # 500, 500, 500, 500, 195; SB3 2.9.2 with the same settings: 18, 500, 500, 194, 500).
    # Five 50k-step runs: several minutes on one idle core.
    finals = [run_train(tmp_path, [*FAST, "algo=dqn", f"seed={seed}", "algo.eval_every=0"],
                        f"s{seed}")["metrics"]["eval/return"]["last"] for seed in range(5)]
    assert sum(r >= 475 for r in finals) >= 4, finals


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_td3_and_ddpg_learn_pendulum(tmp_path, algo):
    # TD3 swings up between 4500 and 5500 steps (seeds 0, 1, 2 at 5000: -755, -140, -274; at
    # 6000: -91, -130, -177); DDPG sooner (at 5000: -82, -127, -125)
    res = run_train(tmp_path, [*FAST, f"algo={algo}", "algo.total_steps=6000",
                               "algo.learning_starts=1000", "algo.eval_every=0",
                               "algo.eval_episodes=3", "network.hidden_sizes=[64,64]"])
    assert res["metrics"]["eval/return"]["last"] > -400  # random play about -1200; a swing-up
    #                                                      policy above -400


@pytest.mark.slow
def test_a2c_learns_cartpole(tmp_path):
    res = run_train(tmp_path, [*FAST, "algo=a2c", "algo.total_steps=60000",
                               "algo.eval_every=0"])
    assert res["metrics"]["eval/return"]["last"] >= 150
