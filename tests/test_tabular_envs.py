"""The chapter 6 tabular envs behave as the book says, and their dense models match the envs.

The vectorised TD loop never steps these envs: it simulates runs from `model_from_env`. So
besides the book's facts (path lengths, returns, true values), these tests check that the
model and the stepped env are the same process, by Monte-Carlo on a few (state, action) pairs.
"""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular import (
    CliffWalkingBookEnv,
    MaximizationBiasEnv,
    RandomWalkEnv,
    TabularModel,
    WindyGridworldEnv,
    model_from_env,
    register_envs,
)

PROJECT_IDS = [
    "rlrun/RandomWalk-v0",
    "rlrun/MaximizationBias-v0",
    "rlrun/WindyGridworld-v0",
    "rlrun/CliffWalkingBook-v0",
]
TOY_TEXT_IDS = ["CliffWalking-v1", "FrozenLake-v1", "Taxi-v4"]

# (state, action) pairs to compare with the real env, per id; stochastic ones get more samples.
MC_PAIRS = {
    "rlrun/RandomWalk-v0": [(1, 0), (3, 1), (5, 1)],
    "rlrun/MaximizationBias-v0": [(0, 0), (0, 1), (0, 7), (1, 3), (1, 9)],
    "rlrun/WindyGridworld-v0": [(30, 1), (33, 1), (36, 0), (39, 2), (38, 3)],
    "rlrun/CliffWalkingBook-v0": [(36, 1), (36, 0), (24, 2), (35, 2), (0, 0)],
    "CliffWalking-v1": [(36, 1), (24, 2), (35, 2), (13, 3)],
    "FrozenLake-v1": [(0, 0), (6, 1), (14, 2), (10, 1)],
    "Taxi-v4": [(328, 0), (328, 4), (16, 4), (479, 5), (97, 2)],
}


def uniform_values(m: TabularModel) -> np.ndarray:
    """v_pi of the uniform policy over valid actions, by solving the linear Bellman system."""
    pi = m.valid / m.valid.sum(axis=1, keepdims=True)
    p_pi = np.einsum("sa,sat->st", pi, m.P * ~m.done)
    r_pi = np.einsum("sa,sat,sat->s", pi, m.P, m.R)
    return np.linalg.solve(np.eye(m.n_states) - p_pi, r_pi)


def shortest_episode(m: TabularModel) -> int:
    """Fewest steps from the start to a terminating transition (deterministic envs)."""
    start = int(np.argmax(m.initial))
    dist = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for s in frontier:
            for a in np.flatnonzero(m.valid[s]):
                s2 = int(np.argmax(m.P[s, a]))
                if m.done[s, a, s2]:
                    return dist[s] + 1
                if s2 not in dist:
                    dist[s2] = dist[s] + 1
                    nxt.append(s2)
        frontier = nxt
    raise AssertionError("no episode ends")


def run_actions(env: gymnasium.Env, actions: list[int]) -> tuple[int, float, list[bool], int]:
    """Final state, return, terminated flags and step count of an action sequence."""
    s, _ = env.reset(seed=0)
    total, flags = 0.0, []
    for a in actions:
        s, r, terminated, truncated, _ = env.step(a)
        total += r
        flags.append(terminated)
        assert not truncated
    return s, total, flags, len(actions)


# --------------------------------------------------------------------------------------
# Gymnasium conformance
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", PROJECT_IDS)
def test_project_envs_pass_check_env(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make(env_id).unwrapped)  # has a spec: render modes get checked too
        check_env(gymnasium.make(env_id, render_mode="ansi").unwrapped)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        check_env(gymnasium.make(env_id))


@pytest.mark.parametrize("cls", [RandomWalkEnv, MaximizationBiasEnv, WindyGridworldEnv,
                                 CliffWalkingBookEnv])
def test_env_classes_pass_check_env_and_render(cls):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*alternative render modes")
        check_env(cls())
    env = cls(render_mode="ansi")
    obs, info = env.reset(seed=1)
    assert isinstance(obs, int) and obs in env.observation_space
    assert info["action_mask"].dtype == np.int8
    text = env.render()
    assert isinstance(text, str) and text.strip()
    obs, reward, terminated, truncated, info = env.step(0)
    assert isinstance(obs, int) and isinstance(reward, float)
    assert truncated is False and isinstance(env.render(), str)


@pytest.mark.parametrize("env_id", PROJECT_IDS)
def test_make_renders_ansi(env_id):
    env = gymnasium.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    assert isinstance(env.render(), str)


def test_registration_is_idempotent_and_caps_episodes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        register_envs()
    caps = {i: gymnasium.spec(i).max_episode_steps for i in PROJECT_IDS}
    assert caps == {
        "rlrun/RandomWalk-v0": None,
        "rlrun/MaximizationBias-v0": 100,
        "rlrun/WindyGridworld-v0": 10_000,
        "rlrun/CliffWalkingBook-v0": 10_000,
    }


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", PROJECT_IDS + TOY_TEXT_IDS)
def test_model_shapes_and_rows(env_id):
    env = gymnasium.make(env_id)
    m = model_from_env(env)
    S, A = env.observation_space.n, env.action_space.n
    assert (m.n_states, m.n_actions) == (S, A)
    assert m.P.shape == m.R.shape == m.done.shape == (S, A, S)
    assert m.reward_std.shape == m.valid.shape == (S, A)
    assert m.initial.shape == m.terminal.shape == (S,)
    assert m.P.dtype == m.R.dtype == np.float64 and m.done.dtype == m.valid.dtype == bool
    assert np.isclose(m.initial.sum(), 1.0) and not m.initial[m.terminal].any()
    live = m.valid & ~m.terminal[:, None]
    np.testing.assert_allclose(m.P[live].sum(axis=1), 1.0)
    assert (m.P >= 0).all() and not (m.done & (m.P == 0)).any()
    # terminal states are absorbing with done and no reward
    for t in np.flatnonzero(m.terminal):
        assert (m.P[t, :, t] == 1).all() and m.done[t, :, t].all() and (m.R[t] == 0).all()


def test_inferred_terminals_of_toy_text_envs():
    terminals = {i: np.flatnonzero(model_from_env(gymnasium.make(i)).terminal).tolist()
                 for i in TOY_TEXT_IDS}
    assert terminals["CliffWalking-v1"] == [47]
    assert terminals["FrozenLake-v1"] == [5, 7, 11, 12, 15]  # holes and goal
    taxi = gymnasium.make("Taxi-v4").unwrapped
    # delivered: taxi at the destination with the passenger there
    assert all(taxi.decode(s)[2] == taxi.decode(s)[3] for s in terminals["Taxi-v4"])
    assert len(terminals["Taxi-v4"]) == 4


@pytest.mark.parametrize("env_id", PROJECT_IDS + TOY_TEXT_IDS)
def test_model_agrees_with_stepping_the_env(env_id):
    """Empirical next-state frequencies, rewards and terminations match the model."""
    env = gymnasium.make(env_id).unwrapped
    m = model_from_env(env)
    env.reset(seed=123)
    for s, a in MC_PAIRS[env_id]:
        stochastic = (m.P[s, a] > 0).sum() > 1 or m.reward_std[s, a] > 0
        n = 1500 if stochastic else 20
        next_states = np.empty(n, dtype=int)
        rewards = np.empty(n)
        for i in range(n):
            env.s = s
            next_states[i], rewards[i], terminated, _, _ = env.step(a)
            assert terminated == m.done[s, a, next_states[i]], (s, a)
        freq = np.bincount(next_states, minlength=m.n_states) / n
        p = m.P[s, a]
        np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-9)
        for s2 in np.unique(next_states):
            got = rewards[next_states == s2]
            tol = 5 * m.reward_std[s, a] / np.sqrt(len(got)) + 1e-9
            assert abs(got.mean() - m.R[s, a, s2]) <= tol, (s, a, s2)


def test_frozen_lake_slippery_probabilities_are_merged_thirds():
    m = model_from_env(gymnasium.make("FrozenLake-v1"))
    # from 6 moving down (1): left to 5, down to 10, right to 7, a third each
    assert np.flatnonzero(m.P[6, 1]).tolist() == [5, 7, 10]
    np.testing.assert_allclose(m.P[6, 1, [5, 7, 10]], 1 / 3)
    # from the corner 0 moving left: up and left both stay in 0 (two table entries, merged)
    np.testing.assert_allclose(m.P[0, 0, [0, 4]], [2 / 3, 1 / 3])
    assert m.R[14, 1, 15] == 1.0 and m.done[14, 1, 15]


def test_model_reads_through_wrappers_and_is_independent_of_the_env():
    env = gymnasium.make("rlrun/CliffWalkingBook-v0")
    m1, m2 = model_from_env(env), model_from_env(env.unwrapped)
    np.testing.assert_array_equal(m1.P, m2.P)
    m1.P[:] = 0
    assert model_from_env(env).P.sum() > 0


# --------------------------------------------------------------------------------------
# The book's facts
# --------------------------------------------------------------------------------------


def test_random_walk_true_values_solve_the_bellman_equation():
    m = model_from_env(gymnasium.make("rlrun/RandomWalk-v0"))
    np.testing.assert_allclose(m.true_values, [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 0])
    np.testing.assert_allclose(uniform_values(m), m.true_values, atol=1e-12)
    assert m.terminal.tolist() == [True, False, False, False, False, False, True]
    assert int(np.argmax(m.initial)) == 3  # C


def test_nineteen_state_walk_of_chapter_7():
    env = gymnasium.make("rlrun/RandomWalk-v0", n_states=19, left_reward=-1.0)
    m = model_from_env(env)
    assert m.n_states == 21 and int(np.argmax(m.initial)) == 10
    np.testing.assert_allclose(m.true_values[1:-1], np.arange(-9, 10) / 10)
    np.testing.assert_allclose(uniform_values(m), m.true_values, atol=1e-12)


def test_random_walk_rewards():
    env = RandomWalkEnv()
    _, ret, flags, _ = run_actions(env, [1, 1, 1])  # C -> D -> E -> right end
    assert ret == 1.0 and flags == [False, False, True]
    _, ret, flags, _ = run_actions(env, [0, 0, 0])
    assert ret == 0.0 and flags == [False, False, True]


def test_windy_gridworld_optimal_path_takes_15_steps():
    env = WindyGridworldEnv()
    # the book's Figure 6.3 path: 9 right (blown up to the top row), 4 down, 2 left
    s, ret, flags, steps = run_actions(env, [1] * 9 + [2] * 4 + [3] * 2)
    assert (s, ret, steps) == (37, -15.0, 15) and flags == [False] * 14 + [True]
    assert shortest_episode(model_from_env(env)) == 15
    env.reset(seed=0)
    env.s = 33  # (3, 3): wind 1 in the column being left
    assert env.step(1)[0] == 24  # (2, 4)


def test_windy_gridworld_king_moves():
    env = gymnasium.make("rlrun/WindyGridworld-v0", king_moves=True)
    assert env.action_space.n == 8
    assert shortest_episode(model_from_env(env)) == 7


def test_cliff_walking_book_paths_and_fall():
    env = gymnasium.make("rlrun/CliffWalkingBook-v0")
    s, ret, flags, steps = run_actions(env, [0] + [1] * 11 + [2])
    assert (s, ret, steps) == (47, -13.0, 13) and flags[-1] and not any(flags[:-1])
    s, ret, flags, steps = run_actions(env, [0] * 3 + [1] * 11 + [2] * 3)
    assert (s, ret, steps) == (47, -17.0, 17) and flags[-1] and not any(flags[:-1])
    env.reset(seed=0)
    assert env.step(1)[:4] == (36, -100.0, False, False)  # into the cliff: back to start
    assert shortest_episode(model_from_env(env)) == 13


def test_gymnasium_cliff_walking_matches_the_book_except_the_goal_row():
    book = model_from_env(gymnasium.make("rlrun/CliffWalkingBook-v0"))
    gym_env = gymnasium.make("CliffWalking-v1")
    gym_model = model_from_env(gym_env)
    for name in ("P", "R", "done", "initial", "terminal"):
        np.testing.assert_array_equal(getattr(book, name), getattr(gym_model, name), name)
    # ...because the model absorbs at the goal; Gymnasium's own table walks on from there
    assert gym_env.unwrapped.P[47][3][0][1:3] == (36, -100)
    assert gym_env.spec.max_episode_steps is None
    assert run_actions(gym_env, [0] + [1] * 11 + [2])[1] == -13


def test_maximization_bias_structure():
    env = gymnasium.make("rlrun/MaximizationBias-v0")
    assert env.action_space.n == 10 and MaximizationBiasEnv.LEFT == 1
    _, ret, flags, _ = run_actions(env, [MaximizationBiasEnv.RIGHT])
    assert ret == 0.0 and flags == [True]
    for b_action in range(10):
        s, _, flags, _ = run_actions(env, [MaximizationBiasEnv.LEFT, b_action])
        assert s == 2 and flags == [False, True]
    obs, info = env.reset(seed=0)
    assert info["action_mask"].tolist() == [1, 1] + [0] * 8
    assert env.step(5)[:4] == (0, 0.0, False, False)  # invalid in A: a no-op
    obs, _, _, _, info = env.step(MaximizationBiasEnv.LEFT)
    assert obs == 1 and info["action_mask"].tolist() == [1] * 10
    m = model_from_env(env)
    assert m.valid[0].tolist() == [True, True] + [False] * 8 and m.valid[1].all()
    np.testing.assert_allclose(m.R[1, :, 2], -0.1)
    np.testing.assert_allclose(m.reward_std[1], 1.0)
    assert (m.reward_std[0] == 0).all() and m.true_values is None
    np.testing.assert_allclose(m.expected_reward()[1], -0.1)


def test_maximization_bias_b_rewards_are_normal():
    env = MaximizationBiasEnv()
    env.reset(seed=7)
    rewards = np.empty(5000)
    for i in range(len(rewards)):
        env.s = MaximizationBiasEnv.B
        rewards[i] = env.step(i % 10)[1]
    assert abs(rewards.mean() + 0.1) < 5 / np.sqrt(len(rewards))
    assert abs(rewards.std() - 1.0) < 0.05


def test_maximization_bias_with_one_b_action():
    env = MaximizationBiasEnv(n_b_actions=1)
    m = model_from_env(env)
    assert m.n_actions == 2 and m.valid[1].tolist() == [True, False]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*alternative render modes")
        check_env(env)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: RandomWalkEnv(n_states=0),
    lambda: RandomWalkEnv(n_states=2.5),
    lambda: RandomWalkEnv(left_reward=float("nan")),
    lambda: MaximizationBiasEnv(n_b_actions=0),
    lambda: MaximizationBiasEnv(b_reward_std=-1.0),
    lambda: WindyGridworldEnv(king_moves="yes"),
    lambda: CliffWalkingBookEnv(render_mode="human"),
    lambda: gymnasium.make("rlrun/RandomWalk-v0", n_states=-3),
])
def test_bad_parameters_raise_config_error(make):
    with pytest.raises(ConfigError) as err:
        make()
    assert "\n" not in str(err.value)


def test_non_tabular_env_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match=r"Pendulum-v1 has no tabular model.*CliffWalking-v1"):
        model_from_env(gymnasium.make("Pendulum-v1"))


def test_non_discrete_spaces_and_hidden_dynamics_are_refused():
    env = CliffWalkingBookEnv()
    env.observation_space = gymnasium.spaces.Box(0, 1, (2,))
    with pytest.raises(ConfigError, match="Discrete"):
        model_from_env(env)
    with pytest.raises(ConfigError, match="fickle_passenger"):
        model_from_env(gymnasium.make("Taxi-v4", fickle_passenger=True))
    env = CliffWalkingBookEnv()
    del env.initial_state_distrib
    with pytest.raises(ConfigError, match="initial_state_distrib"):
        model_from_env(env)


def test_model_shape_mismatch_is_a_config_error():
    m = model_from_env(RandomWalkEnv())
    with pytest.raises(ConfigError, match="valid"):
        TabularModel(m.n_states, m.n_actions, m.P, m.R, m.reward_std, m.done, m.initial,
                     m.valid[:, :1], m.terminal)
