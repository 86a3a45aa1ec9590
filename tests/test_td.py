"""Tabular TD (chapter 6): update targets on hand-computed values, and learning that
matches the book (cliff paths, maximization bias, TD vs MC on the random walk)."""

from __future__ import annotations

import numpy as np
import pytest

from rlrun.algos.td import Agents, TDControlConfig, evaluate
from rlrun.core.checkpoint import load_checkpoint
from rlrun.core.errors import ConfigError, PairingError
from rlrun.envs.tabular import TabularModel
from rlrun.envs.tabular_sim import TabularEnvConfig, VectorTabularSim, load_model

from .conftest import interrupt_and_resume, run_train


def two_state_model() -> TabularModel:
    """s0 --a--> s1 (reward 1), s1 --a--> terminal s2 (reward 2); 2 actions, deterministic."""
    S, A = 3, 2
    P = np.zeros((S, A, S))
    P[0, :, 1] = P[1, :, 2] = P[2, :, 2] = 1.0
    R = np.zeros((S, A, S))
    R[0, :, 1], R[1, :, 2] = 1.0, 2.0
    done = np.zeros((S, A, S), dtype=bool)
    done[1, :, 2] = done[2, :, 2] = True
    return TabularModel(S, A, P, R, np.zeros((S, A)), done, np.array([1.0, 0, 0]),
                        np.ones((S, A), dtype=bool), np.array([False, False, True]))


def agent(method: str, double: bool = False, **kw) -> Agents:
    cfg = TDControlConfig(method=method, double=double, step_size=0.5, gamma=0.9,
                          epsilon=0.2, **kw)
    ag = Agents(cfg, two_state_model(), n_runs=1, rng=np.random.default_rng(0))
    # Q(s1, .) = [4, 2] in table 0 (and [10, 0] in table 1 when double)
    ag.q[0, :, 1] = [4.0, 2.0]
    if double:
        ag.q[1, :, 1] = [0.0, 10.0]
    return ag


def q0(ag: Agents, table: int = 0) -> float:
    return float(ag.q[table, 0, 0])  # Q(s0, a=0)


def update(ag: Agents, a2: int = 1) -> None:
    one = np.array([0])
    ag.update(rows=one, s=one, a=one, r=np.array([1.0]), rows2=one + 1, s2=one + 1,
              a2=np.array([a2]), terminated=np.array([False]))


def test_sarsa_target_uses_the_next_action():
    ag = agent("sarsa")
    update(ag, a2=1)
    assert q0(ag) == pytest.approx(0.5 * (1 + 0.9 * 2.0))  # Q(s1, a'=1) = 2


def test_q_learning_target_uses_the_max():
    ag = agent("q_learning")
    update(ag, a2=1)
    assert q0(ag) == pytest.approx(0.5 * (1 + 0.9 * 4.0))


def test_expected_sarsa_target_is_the_epsilon_greedy_expectation():
    ag = agent("expected_sarsa")
    update(ag)
    expectation = (0.8 + 0.1) * 4.0 + 0.1 * 2.0  # greedy gets 1 - eps + eps/|A|
    assert q0(ag) == pytest.approx(0.5 * (1 + 0.9 * expectation))


def test_double_q_learning_evaluates_the_argmax_with_the_other_table():
    ag = agent("q_learning", double=True)
    ag.rng = np.random.default_rng(1)
    updated = None
    for _ in range(20):  # the coin picks a table; check both outcomes
        before = ag.q[:, 0, 0].copy()
        update(ag)
        changed = np.flatnonzero(ag.q[:, 0, 0] != before)
        assert len(changed) == 1
        t = int(changed[0])
        other = 1 - t
        best = int(np.argmax(ag.q[t, :, 1]))
        expected = before[t] + 0.5 * (1 + 0.9 * ag.q[other, best, 1] - before[t])
        assert ag.q[t, 0, 0] == pytest.approx(expected)
        updated = (updated or set()) | {t}
    assert updated == {0, 1}


def test_terminal_transitions_do_not_bootstrap():
    ag = agent("q_learning")
    one = np.array([0])
    ag.update(rows=one + 1, s=one + 1, a=one, r=np.array([2.0]), rows2=one + 2, s2=one + 2,
              a2=one, terminated=np.array([True]))
    assert ag.q[0, 0, 1] == pytest.approx(4.0 + 0.5 * (2.0 - 4.0))


def test_config_ranges():
    for bad in ({"method": "td_lambda"}, {"epsilon": 1.5}, {"step_size": 0.0},
                {"gamma": 1.1}, {"episodes": 0}):
        with pytest.raises(ConfigError):
            TDControlConfig(**bad)
    with pytest.raises(ConfigError, match="num_runs"):
        TabularEnvConfig(num_runs=0)


def test_model_driven_simulator_matches_the_env():
    model, _, limit = load_model(TabularEnvConfig(id="FrozenLake-v1"))
    assert limit == 100  # Gymnasium registers FrozenLake-v1 with a 100-step TimeLimit
    sim = VectorTabularSim(model, np.random.default_rng(0))
    s = np.zeros(20000, dtype=np.int64)
    s2, r, term = sim.step(s, np.full(20000, 2))  # right from the start, slippery
    freq = np.bincount(s2, minlength=16) / 20000
    np.testing.assert_allclose(freq[[0, 1, 4]], 1 / 3, atol=0.015)


def cliff(tmp_path, algo: str, name: str):
    res = run_train(tmp_path, [f"algo={algo}", "env=cliff_walking_book", "env.num_runs=20",
                               "algo.episodes=500"], name)
    q = load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")["loop"]["q"]
    return res, q


def test_cliff_q_learning_finds_the_optimal_path_sarsa_the_safe_one(tmp_path):
    res_q, _ = cliff(tmp_path, "q_learning", "q")
    res_s, q_s = cliff(tmp_path, "sarsa", "s")
    # Q-learning: every run's greedy policy walks the cliff edge, 13 steps, return -13;
    # online (epsilon-greedy) it falls off now and then: about -50 per episode (Fig. 6.4).
    assert res_q["metrics"]["eval/return"]["last"] == -13.0
    assert res_q["metrics"]["eval/length"]["last"] == 13.0
    assert -70 < res_q["metrics"]["charts/episodic_return"]["tail_mean"] < -35
    # Sarsa learns the safer, longer path and does better online (about -25).
    assert -35 < res_s["metrics"]["charts/episodic_return"]["tail_mean"] < -15
    model, _, _ = load_model(TabularEnvConfig(id="rlrun/CliffWalkingBook-v0"))
    cfg = TDControlConfig(method="sarsa")
    ag = Agents(cfg, model, 20, np.random.default_rng(0))
    ag.q = q_s
    lengths = evaluate(ag, VectorTabularSim(model, np.random.default_rng(1)),
                       np.random.default_rng(2), 1, 200, 20)["length"]
    assert (lengths == 13).sum() == 0  # never the edge
    assert (lengths == 17).mean() >= 0.6  # mostly the top row, the book's "safe path"


def test_double_q_learning_avoids_maximization_bias(tmp_path):
    common = ["env=maximization_bias", "env.num_runs=300", "algo.episodes=300",
              "algo.step_size=0.1"]
    q = run_train(tmp_path, ["algo=q_learning", *common], "q")["metrics"]["td/left_fraction"]
    d = run_train(tmp_path, ["algo=double_q_learning", *common], "d")["metrics"][
        "td/left_fraction"]
    # Fig. 6.5: Q-learning is drawn left early (well above 50%), double Q stays near 5%.
    assert q["best"] > 0.5
    assert d["tail_mean"] < 0.09 and d["tail_mean"] < q["tail_mean"] - 0.02


@pytest.mark.parametrize("method", ["sarsa", "expected_sarsa"])
def test_double_sarsa_variants_learn(tmp_path, method):
    res = run_train(tmp_path, [f"algo={method}", "algo.double=true", "env=cliff_walking_book",
                               "env.num_runs=10", "algo.episodes=300"])
    assert res["metrics"]["charts/episodic_return"]["tail_mean"] > -40


def test_td_beats_mc_on_the_random_walk(tmp_path):
    td = run_train(tmp_path, ["algo=td0", "env=random_walk", "algo.step_size=0.1"], "td")
    mc = run_train(tmp_path, ["algo=mc_constant_alpha", "env=random_walk",
                              "algo.step_size=0.02"], "mc")
    for r in (td, mc):
        m = r["metrics"]["td/rms_error"]
        assert m["count"] == 101 and m["best"] < 0.2  # episodes 0..100, from ~0.23
    # Example 6.2: after 100 episodes TD (alpha .1) ~0.055, MC (alpha .02) ~0.085.
    assert td["metrics"]["td/rms_error"]["last"] < 0.07
    assert 0.07 < mc["metrics"]["td/rms_error"]["last"] < 0.11


@pytest.mark.parametrize("algo, env, episodes, alpha, threshold", [
    ("sarsa", "windy_gridworld", 200, 0.5, -25),  # Example 6.5: ~17 steps by episode 170
    pytest.param("q_learning", "FrozenLake-v1", 2000, 0.1, 0.3, marks=pytest.mark.slow),
    pytest.param("q_learning", "Taxi-v4", 2000, 0.5, -10, marks=pytest.mark.slow)])
def test_learning_on_other_tasks(tmp_path, algo, env, episodes, alpha, threshold):
    res = run_train(tmp_path, [f"algo={algo}", f"env={env}", "env.num_runs=20",
                               f"algo.episodes={episodes}", f"algo.step_size={alpha}",
                               "algo.eval_episodes=5"])
    assert res["metrics"]["charts/episodic_return"]["tail_mean"] > threshold


def test_q_learning_on_a_continuous_task_is_a_pairing_error(tmp_path):
    with pytest.raises(PairingError, match="needs a tabular task .* env=Pendulum-v1 is a"):
        run_train(tmp_path, ["algo=q_learning", "env=Pendulum-v1"])


def test_same_seed_same_numbers_and_exact_resume(tmp_path, monkeypatch):
    args = ["algo=expected_sarsa", "algo.double=true", "env=cliff_walking_book",
            "env.num_runs=8", "algo.episodes=60", "algo.eval_every=20"]
    a = run_train(tmp_path, args, "a")
    b = run_train(tmp_path, args, "b")
    for r in (a, b):  # steps per second is wall-clock time, not a result
        r["metrics"].pop("charts/SPS")
    assert a["metrics"] == b["metrics"]

    # as if Ctrl-C came during episode 37
    resumed = interrupt_and_resume(tmp_path, monkeypatch, args, 37, "c")
    resumed["metrics"].pop("charts/SPS")
    assert resumed["metrics"] == a["metrics"]
