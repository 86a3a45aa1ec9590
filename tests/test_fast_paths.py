"""The CPU fast paths (rlrun/fast/: PPO's and DQN's) give the numbers of the plain code.

The hand-written network forward and backward, the numpy rollout step, the packed optimiser
step and the one-node objective are there for speed only (scripts/bench_deep_rl.py); each
is checked here against the plain torch/autograd version, and a short PPO run with
`algo.fast_path=on` against the same run with `off`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlrun import testing
from rlrun.algos.dqn import DQNConfig
from rlrun.algos.dqn import PlainPath as DQNPlainPath
from rlrun.algos.ppo import PlainPath, PPOConfig, _learn, ppo_loss
from rlrun.core.checkpoint import load_checkpoint
from rlrun.core.errors import ConfigError
from rlrun.fast import dqn_cpu, ppo_cpu
from rlrun.fast.ppo_cpu import FastPPO, FlatParams, bmm, linear
from rlrun.nets.ensemble import EnsembleMLP
from rlrun.nets.mlp import MLP
from rlrun.rl.buffers import ReplayBuffer
from rlrun.rl.rollout import build_agent
from rlrun.rl.training import adam

from .conftest import compose_cfg, run_train


def _net(hidden=(16, 16), activation="tanh"):
    return OmegaConf.create({"_target_": "rlrun.nets.mlp.MLP", "hidden_sizes": list(hidden),
                             "activation": activation})


def _perturbed_agent(continuous, act_dim=3, seed=0):
    """An agent away from its initial small policy outputs."""
    torch.manual_seed(seed)
    agent = build_agent(_net(), 4, act_dim, continuous, -0.5)
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return agent


@pytest.mark.parametrize("shape", [(3, 256, 64, 2), (3, 256, 4, 64), (2, 5, 7, 1), (1, 64, 9, 9)])
def test_bmm_and_linear_pick_an_orientation_but_not_the_result(shape):
    e, m, k, n = shape
    a, b = torch.randn(e, m, k), torch.randn(e, k, n)
    assert torch.allclose(bmm(a, b), torch.bmm(a, b), atol=1e-5)
    w, bias = torch.randn(e, n, k), torch.randn(e, 1, n)
    assert torch.allclose(linear(a, w, bias), a @ w.transpose(1, 2) + bias, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_hand_forward_and_backward_match_autograd(activation, rows):
    torch.manual_seed(0)
    nets = [MLP(5, o, [32, 32], activation) for o in (3, 1)]
    ens = EnsembleMLP(nets)
    x = torch.randn(rows, 5)
    ws, bs = list(ens.weights), list(ens.biases)
    with torch.no_grad():  # as inside PPOObjective.forward
        hs = ppo_cpu._forward(x.expand(2, *x.shape), ws, bs, activation)
    ref = ens(x)
    assert torch.allclose(hs[-1], ref, atol=1e-5)
    g = torch.randn_like(ref)
    g[1, :, 1:] = 0  # nothing reads the critic's padding outputs
    want = torch.autograd.grad((ref * g).sum(), list(ens.parameters()))
    got = ppo_cpu._backward(hs, ws, g, activation)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert torch.all(got[2][1, 1:] == 0)  # so the padding rows get no gradient


def test_packed_parameters_step_like_separate_ones():
    torch.manual_seed(0)
    a = build_agent(_net(), 4, 2, True, -0.5)
    b = build_agent(_net(), 4, 2, True, -0.5)
    b.load_state_dict(a.state_dict())
    packed = FlatParams(b)
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2, eps=1e-5)
    opt_b = adam([packed.param], 1e-2, "cpu", eps=1e-5)
    for _ in range(5):
        obs = torch.randn(32, 4)
        opt_a.zero_grad()
        a.heads(obs)[0].pow(2).sum().backward()
        norm_a = torch.nn.utils.clip_grad_norm_(list(a.parameters()), 0.5)
        opt_a.step()
        packed.zero_grad()
        b.heads(obs)[0].pow(2).sum().backward()
        norm_b = packed.clip_grad_norm_(0.5)
        opt_b.step()
        assert torch.allclose(norm_a, norm_b, atol=1e-5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5)
        assert pb.grad.data_ptr() >= packed.param.grad.data_ptr()  # still views of the pack
    b.load_state_dict(build_agent(_net(), 4, 2, True, 0.0).state_dict())  # copies into views
    assert torch.equal(packed.param[: 2], b.log_std.detach())


@pytest.mark.parametrize("continuous", [False, True])
def test_numpy_rollout_step_is_the_plain_step_with_the_same_draws(continuous):
    agent = _perturbed_agent(continuous)
    fast = FastPPO(agent)
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    assert np.allclose(fast.forward_numpy(obs), agent.body(torch.from_numpy(obs)).detach(),
                       atol=1e-5)
    noise = agent.draw_noise(8)
    a, logp, v = fast.step(obs, noise)
    ta, tlogp, tv = agent.step(obs, noise)
    with torch.no_grad():
        elogp = agent.evaluate(torch.from_numpy(obs), torch.as_tensor(a))[0]
    assert np.allclose(a, ta, atol=1e-5)
    assert np.allclose(logp, tlogp, atol=1e-5) and np.allclose(logp, elogp, atol=1e-5)
    assert np.allclose(v, tv, atol=1e-5)
    assert np.allclose(fast.step(obs)[0], agent.step(obs)[0], atol=1e-5)  # the mode
    with torch.no_grad():  # the numpy views follow the parameters' in-place updates
        for p in agent.parameters():
            p.mul_(0.5)
    assert np.allclose(fast.step(obs, noise)[2], agent.step(obs, noise)[2], atol=1e-5)


def test_gumbel_draws_sample_the_softmax():
    torch.manual_seed(0)
    agent = build_agent(_net(), 2, 3, False, 0.0)
    with torch.no_grad():  # logits (0, 1, 2) whatever the observation
        agent.body.weights[-1].zero_()
        agent.body.biases[-1][0, 0, :3] = torch.tensor([0.0, 1.0, 2.0])
    fast = FastPPO(agent)
    obs = np.zeros((8, 2), np.float32)
    noise = agent.draw_noise(4000, 8)
    counts = np.bincount(np.concatenate([fast.step(obs, noise[t])[0] for t in range(4000)]),
                         minlength=3)
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert np.allclose(counts / counts.sum(), p, atol=0.01)


def _batch(agent, n, continuous, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=g)
    with torch.no_grad():
        a, logp, v = agent.act(obs)
    return {"obs": obs, "actions": a if continuous else a.long(),
            "logp": logp + 0.3 * torch.randn(n, generator=g),
            "values": v + 0.5 * torch.randn(n, generator=g),
            "adv": torch.randn(n, generator=g), "returns": v + torch.randn(n, generator=g)}


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("clip_vloss", [True, False])
@pytest.mark.parametrize("norm_adv", [True, False])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
def test_one_node_objective_matches_autograd(continuous, clip_vloss, norm_adv, ent_coef):
    torch.manual_seed(0)
    agent = build_agent(_net(), 4, 3, continuous, -0.3)
    fast = FastPPO(agent)
    with torch.no_grad():  # away from the initial small policy outputs
        fast.packed.param.add_(0.3 * torch.randn_like(fast.packed.param))
    b = _batch(agent, 64, continuous)
    ref = ppo_loss(agent, b, 0.2, clip_vloss, ent_coef, 0.5, norm_adv)
    want = torch.autograd.grad(ref["loss"], list(agent.parameters()))
    out = fast.loss(agent, b, 0.2, clip_vloss, ent_coef, 0.5, norm_adv)
    fast.zero_grad()
    out["loss"].backward()
    for k in ("loss", "policy", "value", "entropy", "log_ratio"):
        assert torch.allclose(ref[k].detach(), out[k], atol=1e-5), k
    for p, g in zip(agent.parameters(), want, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5)


def test_fast_and_plain_updates_agree():
    """Twenty PPO epochs on one batch: the same parameters either way, up to rounding."""
    ends = []
    for fast in (True, False):
        torch.manual_seed(0)
        agent = build_agent(_net((32, 32)), 4, 2, False, 0.0)
        path = FastPPO(agent) if fast else PlainPath(agent, False, "cpu")
        opt = adam(path.params, 1e-3, "cpu", eps=1e-5)
        b = _batch(agent, 128, False, seed=1)
        cfg = PPOConfig(num_minibatches=2, update_epochs=20)
        out = _learn(path, opt, agent, b, cfg, 0.2, 64)
        ends.append((torch.cat([p.detach().reshape(-1) for p in agent.parameters()]), out))
    (p_fast, out_fast), (p_ref, out_ref) = ends
    assert torch.allclose(p_fast, p_ref, atol=1e-4)
    assert math.isclose(float(out_fast["approx_kl"]), float(out_ref["approx_kl"]), abs_tol=1e-5)


def test_fast_path_option_auto_on_off():
    cfg = PPOConfig()
    assert cfg.fast_path == "auto" and compose_cfg(["algo=ppo"]).algo.fast_path == "auto"
    agent = build_agent(_net(), 4, 2, False, 0.0)
    assert isinstance(ppo_cpu.select(cfg, agent, "cpu"), FastPPO)  # auto: on for a CPU
    assert ppo_cpu.select(PPOConfig(fast_path="off"), agent, "cpu") is None
    assert ppo_cpu.select(PPOConfig(compile=True), agent, "cpu") is None
    assert ppo_cpu.select(cfg, agent, "cuda") is None  # (decided before anything moves)
    with pytest.raises(ConfigError, match="algo.fast_path=on: it runs on the CPU only"):
        ppo_cpu.select(PPOConfig(fast_path="on"), agent, "cuda")
    elu = build_agent(_net(activation="elu"), 4, 2, False, 0.0)  # no written-out elu backward
    assert ppo_cpu.select(cfg, elu, "cpu") is None
    with pytest.raises(ConfigError, match="tanh or relu"):
        ppo_cpu.select(PPOConfig(fast_path="on"), elu, "cpu")
    with pytest.raises(ConfigError, match="fast_path='fast' must be one of auto, on, off"):
        PPOConfig(fast_path="fast")
    with pytest.raises(ConfigError, match="fast_path=on and compile=true"):
        PPOConfig(fast_path="on", compile=True)


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_a_ppo_run_gives_the_same_numbers_with_the_fast_path_on_and_off(tmp_path, env):
    """The same seed, the same draws: every logged number and the final parameters agree
    up to float rounding (the two paths round differently, so not bit for bit)."""
    args = ["threads=1", "checkpoint_every_s=0", "algo=ppo", f"env={env}",
            "algo.total_steps=1024", "algo.eval_episodes=1", "algo.num_steps=64",
            "algo.num_minibatches=2", "algo.update_epochs=4"]
    settings = ("on", "off", "auto") if env == "CartPole-v1" else ("on", "off")
    runs = {fp: run_train(tmp_path, [*args, f"algo.fast_path={fp}"], fp) for fp in settings}
    on, off = runs["on"]["metrics"], runs["off"]["metrics"]
    if "auto" in runs:  # auto is on here (a CPU and a tanh MLP): bit for bit the same run
        auto = runs["auto"]["metrics"]
        assert all(auto[t]["last"] == on[t]["last"] for t in on if t != "charts/SPS")
    assert set(on) == set(off) and "losses/policy" in on
    for tag in on:
        if tag != "charts/SPS":
            for k in ("last", "tail_mean"):
                assert on[tag][k] == pytest.approx(off[tag][k], rel=1e-3, abs=1e-4), (tag, k)
    agents = [load_checkpoint(tmp_path / fp / "checkpoints" / "last.pt")["loop"]["agent"]
              for fp in ("on", "off")]
    for k, v in agents[0].items():
        assert torch.allclose(v, agents[1][k], atol=1e-4), k


# ---- DQN (rlrun/fast/dqn_cpu.py) ----------------------------------------------------------------
def _dqn_pair(activation="relu", hidden=(32, 32), seed=0):
    """The same Q-network and target twice: one for the plain path, one for the fast."""
    out = []
    for _ in range(2):
        torch.manual_seed(seed)
        q = MLP(4, 3, hidden, activation)
        target = copy.deepcopy(q).requires_grad_(False)
        with torch.no_grad():  # a target away from the online network
            for p in target.parameters():
                p.add_(0.3 * torch.randn_like(p))
        out.append((q, target))
    return out


def _replay(n=500, seed=0):
    rb = ReplayBuffer(n, (4,), (), "cpu", act_dtype=torch.long, seed=seed)
    rng = np.random.default_rng(seed)
    rb.add(rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n),
           rng.normal(size=n) * 3, rng.normal(size=(n, 4)), (rng.random(n) < 0.1).astype(float))
    return rb


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("max_grad_norm", [10.0, 0.05])  # 0.05: the clip acts every step
def test_fast_dqn_updates_are_the_plain_ones_to_the_bit(activation, double, max_grad_norm):
    """Thirty updates: the same losses, mean Q, gradient norms and parameters, bit for bit
    (the fast path calls the products autograd calls and clips as clip_grad_norm_ does)."""
    (q1, t1), (q2, t2) = _dqn_pair(activation)
    plain = DQNPlainPath(q1, t1, False, "cpu")
    fast = dqn_cpu.select(DQNConfig(), q2, t2, "cpu")
    assert isinstance(fast, dqn_cpu.FastDQN)
    opts = [adam(path.params, 1e-2, "cpu") for path in (plain, fast)]
    rb = _replay()
    for _ in range(30):
        b = rb.sample(64)
        norms = []
        for path, opt in zip((plain, fast), opts, strict=True):
            losses = path.loss(b, 0.99, double)
            path.backward(losses)
            norms.append(path.clip_grad_norm_(max_grad_norm))
            opt.step()
            path.out = losses
        assert torch.equal(plain.out["td"], fast.out["td"])
        assert torch.equal(plain.out["q_values"].detach(), fast.out["q_values"])
        assert torch.equal(norms[0], norms[1])
    for a, b in zip(q1.parameters(), q2.parameters(), strict=True):
        assert torch.equal(a, b)
    obs = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    assert np.array_equal(plain.greedy(obs), fast.greedy(obs))
    assert np.array_equal(plain.greedy(obs[:1]), fast.greedy(obs[:1]))


def test_fast_dqn_backward_needs_a_loss_first():
    (_, _), (q, t) = _dqn_pair()
    fast = dqn_cpu.FastDQN(q, t)
    with pytest.raises(RuntimeError, match="without a loss"):
        fast.backward({})


def test_dqn_fast_path_option_auto_on_off():
    cfg = DQNConfig()
    assert compose_cfg(["algo=dqn"]).algo.fast_path == "auto"
    (q, t), _ = _dqn_pair()
    assert isinstance(dqn_cpu.select(cfg, q, t, "cpu"), dqn_cpu.FastDQN)
    (q, t), _ = _dqn_pair()
    assert dqn_cpu.select(DQNConfig(fast_path="off"), q, t, "cpu") is None
    assert dqn_cpu.select(DQNConfig(compile=True), q, t, "cpu") is None
    assert dqn_cpu.select(cfg, q, t, "cuda") is None
    with pytest.raises(ConfigError, match="algo.fast_path=on: it runs on the CPU only"):
        dqn_cpu.select(DQNConfig(fast_path="on"), q, t, "cuda")
    elu = MLP(4, 2, (8,), "elu")
    assert dqn_cpu.select(cfg, elu, elu, "cpu") is None
    with pytest.raises(ConfigError, match="relu or tanh"):
        dqn_cpu.select(DQNConfig(fast_path="on"), elu, elu, "cpu")
    cnn = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3))  # network=nature_cnn's kind
    with pytest.raises(ConfigError, match="an MLP network"):
        dqn_cpu.select(DQNConfig(fast_path="on"), cnn, cnn, "cpu")
    with pytest.raises(ConfigError, match="fast_path=on and compile=true"):
        DQNConfig(fast_path="on", compile=True)


def test_a_dqn_run_is_the_same_with_the_fast_path_on_and_off(tmp_path):
    """The same seed: every logged number and the final networks, bit for bit (the default,
    auto, is on here); Double DQN and a clip that acts included."""
    args = ["threads=1", "checkpoint_every_s=0", "algo=dqn", "env=CartPole-v1",
            "algo.total_steps=1200", "algo.learning_starts=300", "algo.train_frequency=16",
            "algo.gradient_steps=4", "algo.eval_episodes=1", "algo.double=true",
            "algo.max_grad_norm=0.5", "network.hidden_sizes=[32,32]"]
    runs = {fp: run_train(tmp_path, [*args, f"algo.fast_path={fp}"], fp)
            for fp in ("auto", "off")}
    on, off = runs["auto"]["metrics"], runs["off"]["metrics"]
    assert set(on) == set(off) and "losses/td" in on
    for tag in on:
        if tag != "charts/SPS":
            assert on[tag] == off[tag], tag
    testing.assert_same_state(tmp_path / "auto", tmp_path / "off", ["q", "target", "rb"])


def test_a_dqn_run_saved_before_the_fast_path_resumes_on_the_plain_one(tmp_path):
    """A saved config without algo.fast_path (runs from before it) holds six Adam states:
    it resumes with fast_path=off, not auto."""
    run = testing.interrupt(tmp_path, ["algo=dqn", "algo.total_steps=600",
                                       "algo.learning_starts=100", "algo.fast_path=off",
                                       "network.hidden_sizes=[16]"], 300)
    saved = run / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(saved)
    del cfg.algo["fast_path"]
    OmegaConf.save(cfg, saved)
    assert testing.resume(run)["steps"] == 600


# ---- SAC (rlrun/fast/sac_cpu.py) ----------------------------------------------------------------
class _Recorder:
    """An optimiser stand-in: `step()` keeps a copy of its parameters' gradients."""

    def __init__(self, params):
        self.params, self.grads = params, None

    def step(self):
        self.grads = [None if p.grad is None else p.grad.clone() for p in self.params]


def _replay_batch():
    """64 transitions of a 3-input, 2-action task, as `ReplayBuffer.sample` gives them."""
    gen = torch.Generator().manual_seed(1)
    return {"obs": torch.randn(64, 3, generator=gen),
            "next_obs": torch.randn(64, 3, generator=gen),
            "actions": torch.rand(64, 2, generator=gen) * 2 - 1,
            "rewards": torch.randn(64, generator=gen),
            "terminated": (torch.rand(64, generator=gen) < 0.1).float()}


def _sac_nets(cfg):
    from rlrun.algos.sac import build

    torch.manual_seed(0)
    nets = build(_net((32, 32), "relu"), 3, 2, np.array([-2.0, -1.0], np.float32),
                 np.array([2.0, 3.0], np.float32), cfg, "cpu")
    with torch.no_grad():  # targets away from the online critics
        for p in nets["qf_target"].parameters():
            p.add_(0.1 * torch.randn_like(p))
    return nets


@pytest.mark.parametrize("autotune", [True, False])
def test_fast_sac_steps_give_autograds_losses_and_gradients(autotune):
    """The critic and the actor step (with alpha's gradient) against `critic_loss` and
    `actor_loss` under autograd, with the same draws: equal up to float rounding."""
    from rlrun.algos.sac import SACConfig, actor_loss, critic_loss
    from rlrun.fast import sac_cpu

    cfg = SACConfig(autotune=autotune)
    plain, fast_nets = _sac_nets(cfg), _sac_nets(cfg)
    fast = sac_cpu.select(cfg, fast_nets, "cpu")
    assert isinstance(fast, sac_cpu.FastSAC)
    b = _replay_batch()
    la_plain, la_fast = (torch.tensor(-1.0, requires_grad=autotune) for _ in range(2))

    torch.manual_seed(5)
    ref = critic_loss(plain, b, la_plain, 0.99, False)
    ref["critic"].backward()
    torch.manual_seed(5)
    rec = _Recorder(fast.q_params)
    out = fast.critic_step(b, la_fast, 0.99, rec)
    for k in ("qf1", "qf2", "q_values", "critic"):
        assert float(out[k]) == pytest.approx(float(ref[k].detach()), rel=1e-5), k
    want = torch.cat([p.grad.reshape(-1) for p in plain["qf"].parameters()])
    assert torch.allclose(rec.grads[0], want, rtol=1e-4, atol=1e-6)

    plain["qf"].requires_grad_(False)
    torch.manual_seed(7)
    ref = actor_loss(plain, b["obs"], la_plain, -2.0)
    (ref["actor"] + ref["alpha"] if autotune else ref["actor"]).backward()
    torch.manual_seed(7)
    rec = _Recorder([*fast.pi_params, la_fast])
    out = fast.actor_step(b["obs"], la_fast, -2.0, autotune, rec)
    for k in ("actor", "entropy", *(("alpha",) if autotune else ())):
        assert float(out[k]) == pytest.approx(float(ref[k].detach()), rel=1e-5), k
    want = torch.cat([p.grad.reshape(-1) for p in plain["actor"].parameters()])
    assert torch.allclose(rec.grads[0], want, rtol=1e-4, atol=1e-6)
    assert float(want.abs().max()) > 1e-3  # a gradient that says something
    if autotune:
        assert float(rec.grads[1]) == pytest.approx(float(la_plain.grad), rel=1e-5)
    else:
        assert rec.grads[1] is None


def test_sac_fast_path_option_auto_on_off():
    from rlrun.algos.sac import SACConfig
    from rlrun.fast import sac_cpu

    assert compose_cfg(["algo=sac"]).algo.fast_path == "auto"
    assert isinstance(sac_cpu.select(SACConfig(), _sac_nets(SACConfig()), "cpu"),
                      sac_cpu.FastSAC)
    nets = _sac_nets(SACConfig())
    assert sac_cpu.select(SACConfig(fast_path="off"), nets, "cpu") is None
    assert sac_cpu.select(SACConfig(compile=True), nets, "cpu") is None
    assert sac_cpu.select(SACConfig(), nets, "cuda") is None
    with pytest.raises(ConfigError, match="algo.fast_path=on: it runs on the CPU only"):
        sac_cpu.select(SACConfig(fast_path="on"), nets, "cuda")
    v1 = SACConfig(variant="v1", fast_path="on")
    with pytest.raises(ConfigError, match="SAC v2 only"):
        sac_cpu.select(v1, _sac_nets(v1), "cpu")
    with pytest.raises(ConfigError, match="fast_path=on and compile=true"):
        SACConfig(fast_path="on", compile=True)


# ---- TD3 and DDPG (rlrun/fast/td3_cpu.py) -------------------------------------------------------
def _td3_nets(n_critics, hidden=(32, 32), activation="relu"):
    from rlrun.algos.td3 import build

    torch.manual_seed(0)
    nets = build(_net(hidden, activation), 3, 2, np.array([-2.0, -1.0], np.float32),
                 np.array([2.0, 3.0], np.float32), n_critics, "cpu")
    with torch.no_grad():  # targets away from the online networks
        for k in ("actor_target", "qf_target"):
            for p in nets[k].parameters():
                p.add_(0.1 * torch.randn_like(p))
    return nets


@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_fast_td3_steps_give_autograds_losses_gradients_and_targets(algo):
    """The critic step (with target smoothing's draw), the actor step and the Polyak update
    against `critic_loss`, `actor_loss` under autograd and `_foreach_lerp_`: equal up to float
    rounding. A 3-input, 2-action task, so the thin layers take the transposed products."""
    from rlrun.algos.td3 import TD3Config, actor_loss, critic_loss
    from rlrun.fast import td3_cpu

    cfg = TD3Config() if algo == "td3" else TD3Config(n_critics=1, policy_noise=0.0,
                                                     policy_frequency=1)
    plain, fast_nets = _td3_nets(cfg.n_critics), _td3_nets(cfg.n_critics)
    fast = td3_cpu.select(cfg, fast_nets, "cpu")
    assert isinstance(fast, td3_cpu.FastTD3)
    b = _replay_batch()

    torch.manual_seed(5)
    ref = critic_loss(plain, b, 0.99, cfg.policy_noise, cfg.noise_clip)
    ref["critic"].backward()
    torch.manual_seed(5)
    rec = _Recorder(fast.q_params)
    out = fast.critic_step(b, 0.99, cfg.policy_noise, cfg.noise_clip, rec)
    assert set(out) == set(ref)
    for k in ref:
        assert float(out[k]) == pytest.approx(float(ref[k].detach()), rel=1e-5), k
    want = torch.cat([p.grad.reshape(-1) for p in plain["qf"].parameters()])
    assert torch.allclose(rec.grads[0], want, rtol=1e-4, atol=1e-6)

    plain["qf"].requires_grad_(False)
    ref = actor_loss(plain, b["obs"])
    ref["actor"].backward()
    rec = _Recorder(fast.pi_params)
    out = fast.actor_step(b["obs"], rec)
    assert float(out["actor"]) == pytest.approx(float(ref["actor"].detach()), rel=1e-5)
    want = torch.cat([p.grad.reshape(-1) for p in plain["actor"].parameters()])
    assert torch.allclose(rec.grads[0], want, rtol=1e-4, atol=1e-6)
    assert float(want.abs().max()) > 1e-3  # a gradient that says something

    fast.polyak(0.3)
    names = ("actor", "qf")
    with torch.no_grad():
        torch._foreach_lerp_([p for k in names for p in plain[k + "_target"].parameters()],
                             [p for k in names for p in plain[k].parameters()], 0.3)
    for k in ("actor_target", "qf_target"):
        for p, q in zip(plain[k].parameters(), fast_nets[k].parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-7), k


def test_td3_fast_path_option_auto_on_off():
    from rlrun.algos.td3 import TD3Config
    from rlrun.fast import td3_cpu

    assert compose_cfg(["algo=td3"]).algo.fast_path == "auto"
    assert compose_cfg(["algo=ddpg"]).algo.fast_path == "auto"
    nets = _td3_nets(2)
    assert isinstance(td3_cpu.select(TD3Config(), nets, "cpu"), td3_cpu.FastTD3)
    nets = _td3_nets(2)
    assert td3_cpu.select(TD3Config(fast_path="off"), nets, "cpu") is None
    assert td3_cpu.select(TD3Config(compile=True), nets, "cpu") is None
    assert td3_cpu.select(TD3Config(), nets, "cuda") is None
    with pytest.raises(ConfigError, match="algo.fast_path=on: it runs on the CPU only"):
        td3_cpu.select(TD3Config(fast_path="on"), nets, "cuda")
    tanh = _td3_nets(2, activation="tanh")
    assert td3_cpu.select(TD3Config(), tanh, "cpu") is None
    with pytest.raises(ConfigError, match="relu activations"):
        td3_cpu.select(TD3Config(fast_path="on"), tanh, "cpu")
    with pytest.raises(ConfigError, match="fast_path=on and compile=true"):
        TD3Config(fast_path="on", compile=True)


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_an_actor_critic_run_gives_the_same_numbers_with_the_fast_path_on_and_off(tmp_path,
                                                                                   algo):
    """SAC's, TD3's and DDPG's: the same seed and draws, a short run's logged numbers and
    final networks agree up to float rounding (150 updates)."""
    args = ["threads=1", "checkpoint_every_s=0", f"algo={algo}", "env=Pendulum-v1",
            "algo.total_steps=400", "algo.learning_starts=250", "algo.batch_size=32",
            "algo.eval_episodes=1", "network.hidden_sizes=[32,32]", "algo.log_every=50"]
    runs = {fp: run_train(tmp_path, [*args, f"algo.fast_path={fp}"], fp) for fp in ("on", "off")}
    on, off = runs["on"]["metrics"], runs["off"]["metrics"]
    assert set(on) == set(off) and "losses/actor" in on
    for tag in on:
        if tag != "charts/SPS":
            assert on[tag]["last"] == pytest.approx(off[tag]["last"], rel=1e-3, abs=1e-4), tag
    nets = [testing.load_state(tmp_path / fp)["nets"] for fp in ("on", "off")]
    for name in ("actor", "qf", "qf_target", *(() if algo == "sac" else ("actor_target",))):
        for k, v in nets[0][name].items():
            assert torch.allclose(v, nets[1][name][k], atol=1e-4), (name, k)


@pytest.mark.parametrize("before", [True, False])
def test_a_td3_run_resumes_on_the_path_it_started_with(tmp_path, before):
    """A fast-path run resumes its packed Adam states; a saved config without
    algo.fast_path (runs from before it: per-parameter Adam states) resumes on the plain one."""
    run = testing.interrupt(tmp_path, ["algo=td3", "algo.total_steps=600",
                                       "algo.learning_starts=100", "algo.batch_size=32",
                                       "algo.eval_episodes=1", "network.hidden_sizes=[16]",
                                       f"algo.fast_path={'off' if before else 'auto'}"], 300)
    if before:
        saved = run / ".hydra" / "config.yaml"
        cfg = OmegaConf.load(saved)
        del cfg.algo["fast_path"]
        OmegaConf.save(cfg, saved)
    assert testing.resume(run)["steps"] == 600
