"""The CPU fast paths of the deep RL loops give the numbers of their plain references.

EnsembleMLP's written-out backward and numpy forward, FlatParams' packed optimiser step,
ActorCritic.step's numpy rollout step and PPO's one-node objective are there for speed only
(scripts/bench_deep_rl.py); each is checked here against the plain torch/autograd version.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlrun.algos.ppo import PPOConfig, _learn, ppo_loss
from rlrun.algos.ppo_objective import make_loss
from rlrun.nets.actor_critic import QEnsemble
from rlrun.nets.ensemble import EnsembleMLP, bmm, linear
from rlrun.nets.mlp import MLP
from rlrun.rl.flat_params import FlatParams
from rlrun.rl.rollout import build_agent
from rlrun.rl.training import adam


def _net(hidden=(16, 16), activation="tanh"):
    return OmegaConf.create({"_target_": "rlrun.nets.mlp.MLP", "hidden_sizes": list(hidden),
                             "activation": activation})


@pytest.mark.parametrize("shape", [(3, 256, 64, 2), (3, 256, 4, 64), (2, 5, 7, 1), (1, 64, 9, 9)])
def test_bmm_and_linear_pick_an_orientation_but_not_the_result(shape):
    e, m, k, n = shape
    a, b = torch.randn(e, m, k), torch.randn(e, k, n)
    assert torch.allclose(bmm(a, b), torch.bmm(a, b), atol=1e-5)
    w, bias = torch.randn(e, n, k), torch.randn(e, 1, n)
    assert torch.allclose(linear(a, w, bias), a @ w.transpose(1, 2) + bias, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_ensemble_values_and_gradients_match_autograd(activation, rows):
    torch.manual_seed(0)
    nets = [MLP(5, o, [32, 32], activation) for o in (3, 1)]
    ens = EnsembleMLP(nets)
    assert ens.fused and (ens.kind is None) == (activation == "elu")
    x = torch.randn(rows, 5, requires_grad=True)
    y, ref = ens(x), ens.reference(x)
    assert torch.allclose(y, ref, atol=1e-5)
    for i, net in enumerate(nets):  # each member is its own MLP
        assert torch.allclose(y[i, :, :net.out_dim], net(x), atol=1e-5)
    g = torch.randn_like(y)
    g[1, :, 1:] = 0  # nothing reads the critic's padding outputs
    params = [x, *ens.parameters()]
    got = torch.autograd.grad((y * g).sum(), params)
    want = torch.autograd.grad((ref * g).sum(), params)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert torch.all(got[3][1, 1:] == 0)  # so its padding rows get no gradient
    with torch.no_grad():  # few rows: numpy; many: torch; both the same function
        assert torch.allclose(ens(x), ref, atol=1e-5)
    if ens.numpy_ok(x.detach().numpy()):
        assert np.allclose(ens.forward_numpy(x.detach().numpy()), ref.detach().numpy(),
                           atol=1e-5)


def test_ensemble_hand_differentiation_helpers_match_autograd():
    torch.manual_seed(1)
    ens = EnsembleMLP([MLP(4, 2, [8], "relu"), MLP(4, 2, [8], "relu")])
    x = torch.randn(6, 4)
    hs = ens.forward_saving(x)
    g = torch.randn_like(hs[-1])
    want = torch.autograd.grad((ens.reference(x) * g).sum(), list(ens.parameters()))
    for a, b in zip(ens.param_grads(hs, g), want, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_critics_still_pass_gradients_to_the_actions():
    """SAC's and TD3's actor step: dQ/da flows through the fused critics."""
    torch.manual_seed(0)
    q = QEnsemble([MLP(5, 1, [16, 16]) for _ in range(2)])
    obs, act = torch.randn(9, 3), torch.randn(9, 2, requires_grad=True)
    (got,) = torch.autograd.grad(q(obs, act).sum(), act)
    (want,) = torch.autograd.grad(q.net.reference(torch.cat([obs, act], -1)).sum(), act)
    assert torch.allclose(got, want, atol=1e-5)


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
def test_numpy_rollout_step_is_act_with_the_same_draws(continuous):
    torch.manual_seed(0)
    agent = build_agent(_net(), 4, 3, continuous, -0.5)
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(0.5 * torch.randn_like(p))
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    noise = agent.draw_noise(8)
    a, logp, v = agent.step(obs, noise)
    with torch.no_grad():
        ta, tlogp, tv = agent.act(torch.from_numpy(obs), noise=noise)
        elogp = agent.evaluate(torch.from_numpy(obs), torch.as_tensor(a))[0]
    assert np.allclose(a, ta.numpy(), atol=1e-5)
    assert np.allclose(logp, tlogp.numpy(), atol=1e-5) and np.allclose(logp, elogp, atol=1e-5)
    assert np.allclose(v, tv.numpy(), atol=1e-5)
    with torch.no_grad():
        mode = agent.act(torch.from_numpy(obs), deterministic=True)[0].numpy()
    assert np.allclose(agent.step(obs)[0], mode, atol=1e-5)


def test_gumbel_draws_sample_the_softmax():
    torch.manual_seed(0)
    agent = build_agent(_net(), 2, 3, False, 0.0)
    with torch.no_grad():  # logits (0, 1, 2) whatever the observation
        agent.body.weights[-1].zero_()
        agent.body.biases[-1][0, 0, :3] = torch.tensor([0.0, 1.0, 2.0])
    obs = np.zeros((8, 2), np.float32)
    noise = agent.draw_noise(4000, 8)
    counts = np.bincount(np.concatenate([agent.step(obs, noise[t])[0] for t in range(4000)]),
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
    packed = FlatParams(agent)
    with torch.no_grad():  # away from the initial small policy outputs
        packed.param.add_(0.3 * torch.randn_like(packed.param))
    b = _batch(agent, 64, continuous)
    ref = ppo_loss(agent, b, 0.2, clip_vloss, ent_coef, 0.5, norm_adv)
    want = torch.autograd.grad(ref["loss"], list(agent.parameters()))
    fast = make_loss(agent, packed)(agent, b, 0.2, clip_vloss, ent_coef, 0.5, norm_adv)
    packed.zero_grad()
    fast["loss"].backward()
    for k in ("loss", "policy", "value", "entropy", "log_ratio"):
        assert torch.allclose(ref[k].detach(), fast[k], atol=1e-5), k
    for p, g in zip(agent.parameters(), want, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5)


def test_fast_and_reference_updates_agree(monkeypatch):
    """Twenty PPO epochs on one batch: the same parameters either way, up to rounding."""
    agents = []
    for fast in (True, False):
        torch.manual_seed(0)
        agent = build_agent(_net((32, 32)), 4, 2, False, 0.0)
        packed = FlatParams(agent)
        opt = adam([packed.param], 1e-3, "cpu", eps=1e-5)
        loss_fn = make_loss(agent, packed) if fast else ppo_loss
        b = _batch(agent, 128, False, seed=1)
        cfg = PPOConfig(num_minibatches=2, update_epochs=20)
        out = _learn(packed, opt, loss_fn, agent, b, cfg, 0.2, 64)
        agents.append((packed.param.detach().clone(), out))
    (p_fast, out_fast), (p_ref, out_ref) = agents
    assert torch.allclose(p_fast, p_ref, atol=1e-4)
    assert math.isclose(float(out_fast["approx_kl"]), float(out_ref["approx_kl"]), abs_tol=1e-5)


def test_fast_objective_only_where_it_applies():
    agent = build_agent(_net(activation="elu"), 4, 2, False, 0.0)
    assert make_loss(agent, FlatParams(agent)) is None  # no written-out elu backward
    agent = build_agent(_net(), 4, 2, False, 0.0)
    other = build_agent(_net(), 4, 2, False, 0.0)
    assert make_loss(agent, FlatParams(other)) is None  # packed parameters of another agent
    assert make_loss(agent, FlatParams(agent)) is not None
