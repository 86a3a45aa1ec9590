"""The chapter 2 bandit methods learn what the book says they learn."""

from __future__ import annotations

import numpy as np
import pytest

from rlrun.algos.bandits import (
    EpsilonGreedyConfig,
    GradientBanditConfig,
    UCBConfig,
    make_agent,
)
from rlrun.envs.bandit import BanditConfig, BanditTestbed
from rlrun.rl.policy import argmax_random_ties

from .conftest import run_train


def simulate(cfg, env: BanditConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-step run-average reward and optimal-action fraction (no logging)."""
    bandit = BanditTestbed(env, np.random.default_rng(seed))
    agent = make_agent(cfg, env.num_runs * env.contexts, env.k, np.random.default_rng(seed + 1))
    rewards, optimal = np.zeros(env.steps), np.zeros(env.steps)
    for t in range(env.steps):
        rows = bandit.observe()
        actions = agent.act(rows)
        r, o = bandit.step(rows, actions)
        agent.update(rows, actions, r)
        rewards[t], optimal[t] = r.mean(), o.mean()
    return rewards, optimal


TESTBED = BanditConfig(num_runs=1000, steps=1000)


def test_ties_are_broken_uniformly():
    rng = np.random.default_rng(0)
    values = np.zeros((4, 40000))
    values[3] = -1.0  # arm 3 is never maximal; arms 0..2 tie
    counts = np.bincount(argmax_random_ties(values, rng), minlength=4) / 40000
    assert counts[3] == 0
    np.testing.assert_allclose(counts[:3], 1 / 3, atol=0.01)
    values[1, :] = 1.0  # unique maximum: always arm 1
    assert (argmax_random_ties(values, rng) == 1).all()


def test_epsilon_greedy_beats_greedy_fig_2_2():
    r_greedy, o_greedy = simulate(EpsilonGreedyConfig(epsilon=0.0), TESTBED)
    r_01, o_01 = simulate(EpsilonGreedyConfig(epsilon=0.1), TESTBED)
    r_001, _ = simulate(EpsilonGreedyConfig(epsilon=0.01), TESTBED)
    tail = slice(-100, None)
    # Book, Fig. 2.2 at step 1000: greedy ~1.0 reward / ~35% optimal; eps=0.1 ~1.4 / ~80%.
    assert 0.9 < r_greedy[tail].mean() < 1.15
    assert 1.3 < r_01[tail].mean() < 1.5
    assert r_greedy[tail].mean() < r_001[tail].mean() < r_01[tail].mean()
    assert 0.25 < o_greedy[tail].mean() < 0.45
    assert 0.75 < o_01[tail].mean() < 0.88
    assert abs(r_01[:1].mean()) < 0.15  # first step: a random arm, mean q* is 0


def test_optimistic_greedy_fig_2_3():
    _, o_opt = simulate(EpsilonGreedyConfig(epsilon=0.0, initial_value=5.0, step_size=0.1),
                        TESTBED)
    _, o_real = simulate(EpsilonGreedyConfig(epsilon=0.1, step_size=0.1), TESTBED)
    # The famous spike: after trying every arm once (t=11) greedy picks the best ~40%.
    assert o_opt[10] > 0.3 and o_opt[10] > o_opt[5] + 0.2
    assert o_opt[-200:].mean() > o_real[-200:].mean()  # ~85% vs ~80% late


def test_ucb_beats_epsilon_greedy_fig_2_4():
    r_ucb, _ = simulate(UCBConfig(c=2.0), TESTBED)
    r_eps, _ = simulate(EpsilonGreedyConfig(epsilon=0.1), TESTBED)
    assert r_ucb[-500:].mean() > r_eps[-500:].mean() + 0.03
    assert r_ucb[10] > r_ucb[9] + 0.3  # spike at step 11 after each arm was tried once
    assert all(abs(r_ucb[t]) < 0.2 for t in range(10))  # first 10 steps: untried arms


def test_gradient_baseline_helps_fig_2_5():
    env = BanditConfig(num_runs=1000, steps=1000, mean=4.0)
    results = {(a, b): simulate(GradientBanditConfig(step_size=a, baseline=b), env)[1]
               for a in (0.1, 0.4) for b in (True, False)}
    late = {k: v[-100:].mean() for k, v in results.items()}
    # Book, Fig. 2.5: with baseline ~80% (alpha 0.1) / ~75% (0.4), without ~50% / ~30%.
    assert late[(0.1, True)] > 0.75 and late[(0.4, True)] > 0.65
    assert late[(0.1, False)] < late[(0.1, True)] - 0.15
    assert late[(0.4, False)] < late[(0.4, True)] - 0.25


def test_contextual_bandit_keeps_estimates_per_context():
    env = BanditConfig(num_runs=500, steps=2000, contexts=4)
    _, o_ctx = simulate(EpsilonGreedyConfig(epsilon=0.1), env)
    # A learner that sees the context can be right in every context (~80% like Fig. 2.2);
    # one table for all contexts could not exceed roughly 1/contexts + chance.
    assert o_ctx[-200:].mean() > 0.7
    for cfg in (UCBConfig(c=1.0), GradientBanditConfig(step_size=0.2)):
        _, o = simulate(cfg, env)
        assert o[-200:].mean() > 0.6


def test_nonstationary_walk_and_constant_step_size():
    env = BanditConfig(num_runs=500, steps=3000, nonstationary=True, start_equal=True)
    bandit = BanditTestbed(env, np.random.default_rng(0))
    assert np.ptp(bandit.q_star) == 0.0
    for _ in range(100):
        bandit.step(bandit.observe(), np.zeros(500, dtype=int))
    assert np.std(bandit.q_star) == pytest.approx(0.1, rel=0.1)  # 0.01 * sqrt(100)
    # Exercise 2.5: a constant step size tracks the moving target better than averages.
    _, o_avg = simulate(EpsilonGreedyConfig(epsilon=0.1), env)
    _, o_const = simulate(EpsilonGreedyConfig(epsilon=0.1, step_size=0.1), env)
    assert o_const[-500:].mean() > o_avg[-500:].mean() + 0.1


@pytest.mark.parametrize("algo", ["epsilon_greedy", "ucb", "gradient_bandit"])
def test_train_runs_and_learns(tmp_path, algo):
    res = run_train(tmp_path, [f"algo={algo}", "env.num_runs=300", "env.steps=400"])
    m = res["metrics"]
    assert res["status"] == "completed" and res["steps"] == 400
    assert m["bandit/average_reward"]["tail_mean"] > 1.0  # q* mean 0: random play gives 0
    assert m["bandit/optimal_action"]["count"] == 400
    assert res["objective"] == m["bandit/average_reward_all_steps"]["last"]


def test_contextual_task_through_train(tmp_path):
    res = run_train(tmp_path, ["env=contextual_bandit", "env.num_runs=200", "env.steps=800"])
    assert res["env"] == "contextual_bandit"
    assert res["metrics"]["bandit/optimal_action"]["tail_mean"] > 0.6
