"""Speed changes that must not change numbers (issue 27): each is held to the formula or the
figures of the code before it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlrun.core.checkpoint import load_checkpoint
from rlrun.nets.ensemble import EnsembleMLP
from rlrun.nets.mlp import MLP

from .conftest import run_train

FAST = ["threads=1", "checkpoint_every_s=0", "seed=3"]


def _old_forward(ens: EnsembleMLP, x: torch.Tensor) -> torch.Tensor:
    """EnsembleMLP.forward as written before its layers were read from the registered dicts:
    ParameterList iteration and the activation modules called."""
    x = x.expand(ens.n, *x.shape)
    last = len(ens.weights) - 1
    for i, (w, b) in enumerate(zip(ens.weights, ens.biases, strict=True)):
        x = torch.baddbmm(b, x, w.transpose(1, 2))
        if i < last:
            x = ens.acts[i](x)
    return x


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_ensemble_forward_and_gradients_equal_the_old_formula_bitwise(activation):
    torch.manual_seed(0)
    ens = EnsembleMLP([MLP(5, 2, [16, 16], activation), MLP(5, 1, [16, 16], activation)])
    x = torch.randn(9, 5)
    y_new, y_old = ens(x), _old_forward(ens, x)
    assert torch.equal(y_new, y_old)
    g_new = torch.autograd.grad(y_new.pow(2).sum(), list(ens.parameters()))
    g_old = torch.autograd.grad(y_old.pow(2).sum(), list(ens.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g_new, g_old, strict=True))
    # the functional forms are used for the two common activations only (elu: its module)
    fns = [act for _, _, act in ens.layers()][:-1]
    assert fns == ([torch.tanh] * 2 if activation == "tanh" else
                   [torch.relu] * 2 if activation == "relu" else list(ens.acts))
    assert ens.layers()[-1][2] is None and isinstance(ens.acts[0], nn.Module)


# A2C's rollout now stays in numpy and its GAE runs there: the figures of the same run made by
# the loop before that change (torch buffers, GAE on tensors; measured at commit f934174 on the
# project's CPU torch 2.13.0). The arithmetic is the same float32 operations in the same order.
A2C_BEFORE = {
    "CartPole-v1": {"losses/policy": 1.9583454132080078, "losses/value": 11.387453079223633,
                    "losses/entropy": 0.6780032515525818, "eval/return": 35.0},
    "Pendulum-v1": {"losses/policy": -31.13570213317871, "losses/value": 461.1923828125,
                    "losses/entropy": 1.4127166271209717, "eval/return": -1407.4964296994892},
}


@pytest.mark.parametrize("env", sorted(A2C_BEFORE))
def test_a2c_numpy_rollout_gives_the_numbers_of_the_torch_rollout(tmp_path, env):
    res = run_train(tmp_path, [*FAST, "algo=a2c", f"env={env}", "algo.total_steps=800",
                               "algo.eval_every=400",
                               f"algo.eval_episodes={2 if env == 'CartPole-v1' else 1}",
                               "algo.log_every=40"])
    for key, before in A2C_BEFORE[env].items():
        assert res["metrics"][key]["last"] == pytest.approx(before, rel=1e-5), key


def test_dqn_anneal_lr_is_sb3s_linear_schedule(tmp_path):
    # training phases at env steps 200, 400, 600 of 600: the last one runs at lr * (1 - 1) = 0
    run_train(tmp_path, [*FAST, "algo=dqn", "algo.total_steps=600", "algo.learning_starts=100",
                         "algo.train_frequency=200", "algo.anneal_lr=true",
                         "network.hidden_sizes=[8]", "algo.eval_every=600",
                         "algo.eval_episodes=1"], "a")
    opt = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["loop"]["opt"]
    assert opt["param_groups"][0]["lr"] == 0.0
    run_train(tmp_path, [*FAST, "algo=dqn", "algo.total_steps=600", "algo.learning_starts=100",
                         "algo.train_frequency=200", "network.hidden_sizes=[8]",
                         "algo.eval_every=600", "algo.eval_episodes=1"], "b")
    opt = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["loop"]["opt"]
    assert opt["param_groups"][0]["lr"] == pytest.approx(2.3e-3)  # the tuned preset's, flat


def test_dqn_anneal_lr_is_named_when_a_resume_raises_the_budget():
    from rlrun.schemas.deep_rl import DQNConfig

    assert any("anneal_lr" in w for w in DQNConfig(anneal_lr=True).budget_schedules())
    assert not any("anneal_lr" in w for w in DQNConfig().budget_schedules())


def test_replay_add_by_slice_stores_what_the_index_formula_stored():
    # ReplayBuffer.add writes a slice when the batch does not wrap (on the CPU through NumPy
    # views of the tensors); the old formula indexed (arange(n) + pos) % capacity with
    # tensors converted by torch every time. Capacity 7 and batches of 3 wrap twice.
    import numpy as np

    from rlrun.rl.buffers import ReplayBuffer

    rb = ReplayBuffer(7, (2,), (1,), "cpu", seed=0)
    ref = {k: v.clone() for k, v in rb.data.items()}
    pos, g = 0, np.random.default_rng(0)
    for _ in range(5):
        batch = {"obs": g.normal(size=(3, 2)), "actions": g.normal(size=(3, 1)),
                 "rewards": g.normal(size=3), "next_obs": g.normal(size=(3, 2)),
                 "terminated": g.random(3) < 0.5}
        rb.add(batch["obs"], batch["actions"], batch["rewards"], batch["next_obs"],
               batch["terminated"])
        idx = (torch.arange(3) + pos) % 7
        for k, t in ref.items():
            t[idx] = torch.as_tensor(np.asarray(batch[k]), dtype=t.dtype).reshape(3, *t.shape[1:])
        pos = (pos + 3) % 7
        assert all(torch.equal(rb.data[k], ref[k]) for k in ref)
    assert rb.pos == pos and rb.full and len(rb) == 7
    # DQN's layout: integer actions into a long column, float64 values at float32's edges
    rb = ReplayBuffer(4, (2,), (), "cpu", act_dtype=torch.long, seed=0)
    obs = np.array([[1 + 2 ** -30, -3.4e38], [np.nan, np.inf]])
    rb.add(obs, np.array([1, 0]), np.array([0.1, -0.7]), obs[::-1], np.array([True, False]))
    want = torch.as_tensor(obs, dtype=torch.float32)
    assert torch.equal(rb.data["obs"][:2].nan_to_num(), want.nan_to_num())
    assert rb.data["actions"][:2].tolist() == [1, 0]
    assert torch.equal(rb.data["rewards"][:2], torch.tensor([0.1, -0.7], dtype=torch.float64)
                       .float())
    assert rb.data["terminated"][:2].tolist() == [1.0, 0.0]
