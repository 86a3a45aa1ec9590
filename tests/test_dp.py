"""Chapters 3 and 4 of Sutton & Barto: the MDPs and the DP module against the book's numbers.

Where the book prints only a plot (Figures 4.2 and 4.3), the expected numbers are those of
the reference scripts, ShangtongZhang/reinforcement-learning-an-introduction at commit
96bc203 (chapter04/car_rental.py with np.int -> int, chapter04/gamblers_problem.py), run
here; each literal says which script printed it.
"""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular import (
    GamblersProblemEnv,
    GridworldEnv,
    JacksCarRentalEnv,
    SmallGridworldEnv,
    model_from_env,
)
from rlrun.envs.tabular.model import TabularModel
from rlrun.envs.tabular.planning import poisson_pmf
from rlrun.rl import dp

NEW_IDS = ["rlrun/Gridworld-v0", "rlrun/SmallGridworld-v0", "rlrun/GamblersProblem-v0",
           "rlrun/BlackjackBook-v0", "rlrun/JacksCarRental-v0"]


def mdp_of(env, gamma: float | None = None) -> dp.MDP:
    return dp.MDP(model_from_env(env), env.discount if gamma is None else gamma)


def book_round(x: np.ndarray, expected: np.ndarray, decimals: int = 1) -> None:
    """The book prints one decimal; -1.75 is printed -1.7, so allow half a unit either way."""
    np.testing.assert_allclose(x, expected, atol=0.5 * 10.0**-decimals + 1e-9)


# ---- the envs -------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", NEW_IDS)
def test_registered_envs_pass_gymnasium_checks(env_id):
    env = gymnasium.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    m = model_from_env(env)
    assert np.allclose(m.P.sum(axis=2), 1.0)
    assert np.isclose(m.initial.sum(), 1.0) and not m.initial[m.terminal].any()


@pytest.mark.parametrize("make", [GridworldEnv, SmallGridworldEnv,
                                  lambda: GamblersProblemEnv(goal=20)])
def test_toy_text_table_gives_the_same_model(make):
    """`P` (the toy_text view) read through model_from_env's table path equals the dense
    model: both are one process."""
    env = make()
    fast = model_from_env(env)

    class TableOnly:  # the same env without tabular_model(): model_from_env walks P
        def __init__(self, e):
            self.unwrapped = self
            self.spec = None
            for k in ("P", "observation_space", "action_space", "initial_state_distrib",
                      "valid_actions", "terminal_states", "reward_std"):
                setattr(self, k, getattr(e, k))

    slow = model_from_env(TableOnly(env))
    for name in ("P", "R", "done", "initial", "valid", "terminal"):
        np.testing.assert_allclose(getattr(slow, name), getattr(fast, name), atol=1e-15,
                                   err_msg=name)


def test_stepping_matches_the_model():
    """Next-state frequencies and mean reward of env.step against P and R (car rental,
    a stochastic pair), by Monte Carlo."""
    env = JacksCarRentalEnv(poisson_returns=False)
    m = model_from_env(env)
    s, a = 10 * 21 + 7, 7  # (10, 7), move +2
    env.reset(seed=0)
    n = 4000
    counts = np.zeros(m.n_states)
    rewards = np.zeros(n)
    for i in range(n):
        env.s = s
        s2, r, term, trunc, _ = env.step(a)
        counts[s2] += 1
        rewards[i] = r
        assert not term and not trunc
    expected = m.P[s, a] * n
    big = expected > 40
    assert np.all(np.abs(counts[big] - expected[big]) < 5 * np.sqrt(expected[big]))
    mean_r = (m.P[s, a] * m.R[s, a]).sum()
    assert abs(rewards.mean() - mean_r) < 5 * rewards.std() / np.sqrt(n)


def test_car_rental_exact_tails_and_reference_truncation():
    exact = JacksCarRentalEnv()
    assert exact.nS == 441 and exact.nA == 11
    trunc = JacksCarRentalEnv(max_poisson=10)
    assert trunc.nS == 442 and trunc.state_labels[441] == "lost"
    m = model_from_env(trunc)
    lost = m.P[:441, :, 441]
    # the reference drops requests and returns above 10: 1 - prod of the four cdfs(10)
    kept = np.prod([poisson_pmf(lam, 11).sum() for lam in (3, 4, 3, 2)])
    np.testing.assert_allclose(lost, 1.0 - kept, rtol=1e-9)
    assert abs(lost[0, 0] - 0.0034310) < 1e-6  # about 0.3% of a day's probability
    # moves need the cars: from (2, 0) moves -5..-1 and +3..+5 are invalid
    assert model_from_env(exact).valid[2 * 21 + 0].tolist() == [False] * 5 + [True] * 3 + \
        [False] * 3


def test_car_rental_backups_equal_the_reference_expected_return():
    """One Bellman backup q(s, a) against chapter04/car_rental.py's expected_return with
    v[i, j] = 400 + 10 i + 5 j (printed by it, for both of its return models)."""
    i, j = np.meshgrid(np.arange(21), np.arange(21), indexing="ij")
    v = (400.0 + 10.0 * i + 5.0 * j).ravel()
    cases = [((0, 0), 0), ((5, 10), -3), ((10, 3), 2), ((20, 20), 0), ((20, 0), 5)]
    reference = {  # car_rental.expected_return(state, action, v, constant_returned_cars)
        True: [394.760015931, 516.338025797, 507.607469223, 682.191138045, 564.414507566],
        False: [394.619186256, 516.15884072, 507.431510209, 678.757574485, 564.052516048],
    }
    for fixed, expected in reference.items():
        mdp = mdp_of(JacksCarRentalEnv(poisson_returns=not fixed, max_poisson=10))
        q = mdp.q(np.append(v, 0.0))  # the "lost" state's value is 0
        got = [q[s[0] * 21 + s[1], a + 5] for s, a in cases]
        np.testing.assert_allclose(got, expected, atol=1e-8)


def test_gamblers_problem_model():
    m = model_from_env(GamblersProblemEnv())
    assert (m.n_states, m.n_actions) == (101, 51)
    assert np.flatnonzero(m.valid[30]).tolist() == list(range(1, 31))
    assert np.flatnonzero(m.valid[70]).tolist() == list(range(1, 31))
    np.testing.assert_allclose(m.P[30, 20, [50, 10]], [0.4, 0.6])
    assert m.R[50, 50, 100] == 1.0 and m.done[50, 50, 100] and m.done[50, 50, 0]


@pytest.mark.parametrize("kwargs, match", [
    ({"p_heads": 1.0}, "p_heads"), ({"goal": 1}, "goal"),
])
def test_gambler_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GamblersProblemEnv(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_poisson": 0}, "max_poisson"), ({"poisson_returns": "yes"}, "poisson_returns"),
    ({"request_means": (3,)}, "request_means"), ({"max_cars": 0}, "max_cars"),
    ({"poisson_returns": False, "return_means": (2.5, 2)}, "whole numbers"),
])
def test_car_rental_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        JacksCarRentalEnv(**kwargs)


# ---- Figures 3.2 and 3.5 ----------------------------------------------------------------------
FIG_3_2 = np.array([
    [3.3, 8.8, 4.4, 5.3, 1.5],
    [1.5, 3.0, 2.3, 1.9, 0.5],
    [0.1, 0.7, 0.7, 0.4, -0.4],
    [-1.0, -0.4, -0.4, -0.6, -1.2],
    [-1.9, -1.3, -1.2, -1.4, -2.0],
])
FIG_3_5 = np.array([
    [22.0, 24.4, 22.0, 19.4, 17.5],
    [19.8, 22.0, 19.8, 17.8, 16.0],
    [17.8, 19.8, 17.8, 16.0, 14.4],
    [16.0, 17.8, 16.0, 14.4, 13.0],
    [14.4, 16.0, 14.4, 13.0, 11.7],
])


def test_figure_3_2_random_policy_values():
    mdp = mdp_of(GridworldEnv())
    pi = dp.uniform_policy(mdp.valid)
    v = mdp.evaluate(pi)
    book_round(v.reshape(5, 5), FIG_3_2)
    # iterative evaluation, both ways, reaches the same values
    for in_place in (False, True):
        w, pm = np.zeros(25), mdp.policy_model(pi)
        while mdp.evaluation_sweep(w, pm, in_place=in_place) > 1e-10:
            pass
        np.testing.assert_allclose(w, v, atol=1e-8)


def test_figure_3_5_optimal_values_and_policy():
    mdp = mdp_of(GridworldEnv())
    v_star, actions, rounds = dp.solve_optimal(mdp)
    book_round(v_star.reshape(5, 5), FIG_3_5)
    v = np.zeros(25)
    while mdp.optimality_sweep(v) > 1e-10:
        pass
    np.testing.assert_allclose(v, v_star, atol=1e-8)
    # Figure 3.5's pi*: from A every action is optimal; in the bottom-left corner up and
    # right tie (0 up, 1 right, 2 down, 3 left)
    mask = dp.greedy_mask(mdp.q(v_star))
    assert mask[GridworldEnv.A].all()
    assert np.flatnonzero(mask[20]).tolist() == [0, 1]
    assert np.flatnonzero(mask[0]).tolist() == [1]
    assert np.flatnonzero(mask[2]).tolist() == [3]
    assert np.flatnonzero(mask[4]).tolist() == [3]


# ---- Figure 4.1 -------------------------------------------------------------------------------
FIG_4_1 = {
    1: [[0.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0],
        [-1.0, -1.0, -1.0, 0.0]],
    2: [[0.0, -1.7, -2.0, -2.0], [-1.7, -2.0, -2.0, -2.0], [-2.0, -2.0, -2.0, -1.7],
        [-2.0, -2.0, -1.7, 0.0]],
    3: [[0.0, -2.4, -2.9, -3.0], [-2.4, -2.9, -3.0, -2.9], [-2.9, -3.0, -2.9, -2.4],
        [-3.0, -2.9, -2.4, 0.0]],
    10: [[0.0, -6.1, -8.4, -9.0], [-6.1, -7.7, -8.4, -8.4], [-8.4, -8.4, -7.7, -6.1],
         [-9.0, -8.4, -6.1, 0.0]],
}
FIG_4_1_INF = [[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14],
               [-22, -20, -14, 0]]
# the greedy policy drawn beside v_inf (arrows; 0 up, 1 right, 2 down, 3 left)
FIG_4_1_POLICY = {1: [3], 2: [3], 3: [2, 3], 4: [0], 5: [0, 3], 6: [2, 3], 7: [2],
                  8: [0], 9: [0, 1], 10: [1, 2], 11: [2], 12: [0, 1], 13: [1], 14: [1]}


def test_figure_4_1_synchronous_sweeps():
    mdp = mdp_of(SmallGridworldEnv())
    pi = dp.uniform_policy(mdp.valid)
    pm = mdp.policy_model(pi)
    v = np.zeros(16)
    for k in range(1, 11):
        mdp.evaluation_sweep(v, pm)
        if k in FIG_4_1:
            book_round(v.reshape(4, 4), np.array(FIG_4_1[k]))
    v_inf = mdp.evaluate(pi)
    np.testing.assert_allclose(v_inf.reshape(4, 4), FIG_4_1_INF, atol=1e-9)
    mask = dp.greedy_mask(mdp.q(v_inf))
    for s, arrows in FIG_4_1_POLICY.items():
        assert np.flatnonzero(mask[s]).tolist() == arrows, s
    # the book's k = 3 panel is already optimal: the same arrows
    v3 = np.zeros(16)
    for _ in range(3):
        mdp.evaluation_sweep(v3, pm)
    m3 = dp.greedy_mask(mdp.q(v3))
    for s, arrows in FIG_4_1_POLICY.items():
        assert np.flatnonzero(m3[s]).tolist() == arrows, s


def test_figure_4_1_in_place_is_faster():
    """The reference's compute_state_value: in place converges in fewer sweeps (to 1e-4:
    the reference prints 113 in place and 172 synchronous)."""
    mdp = mdp_of(SmallGridworldEnv())
    pm = mdp.policy_model(dp.uniform_policy(mdp.valid))
    counts = {}
    for in_place in (True, False):
        v, n = np.zeros(16), 0
        while mdp.evaluation_sweep(v, pm, in_place=in_place) >= 1e-4:
            n += 1
        counts[in_place] = n
    assert counts == {True: 113, False: 172}


# ---- Figure 4.2 -------------------------------------------------------------------------------
def policy_iteration(mdp: dp.MDP, in_place_theta: float | None = None):
    """Policies pi_0.. and the final v, from pi_0 = move 0, the book's algorithm; evaluation
    exact, or in place to theta from the previous values (as the reference)."""
    S = mdp.S
    actions = np.full(S, 5)
    v = np.zeros(S)
    policies, sweeps, changes = [actions], [], []
    while True:
        pi = dp.deterministic(actions, mdp.A)
        if in_place_theta is None:
            v = mdp.evaluate(pi)
        else:
            pm, n = mdp.policy_model(pi), 0
            while True:
                n += 1
                if mdp.evaluation_sweep(v, pm, in_place=True) < in_place_theta:
                    break
            sweeps.append(n)
        actions, changed = dp.improve(mdp.q(v), actions)
        changes.append(changed)
        if changed == 0:
            return policies, v, sweeps, changes
        policies.append(actions)


# car_rental.py (fixed returns, its default), its final policy, rows n1 = 20 .. 0
REF_FIXED_POLICY = """
5 5 5 4 3 3 2 2 2 2 2 2 1 1 1 1 1 1 0 0 0
5 5 5 4 3 2 2 1 1 1 1 1 1 0 0 0 0 0 0 0 0
5 5 5 4 3 2 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0
5 5 5 4 3 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 5 5 4 3 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 5 5 4 3 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 5 5 4 3 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 5 4 4 3 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 5 4 3 3 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 4 4 3 2 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
5 4 3 3 2 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
4 4 3 2 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
3 3 3 2 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
3 2 2 2 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
2 2 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -1
0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -1 -1 -1 -1 -1 -1
0 0 0 0 0 0 0 0 0 0 0 -1 -1 -1 -1 -1 -2 -2 -2 -2 -2
0 0 0 0 0 0 0 0 0 -1 -1 -1 -2 -2 -2 -2 -2 -3 -3 -3 -3
0 0 0 0 0 0 0 0 -1 -1 -2 -2 -2 -3 -3 -3 -3 -3 -4 -4 -4
"""


def as_grid(actions: np.ndarray) -> np.ndarray:
    return actions[:441].reshape(21, 21) - 5


def test_figure_4_2_reproduces_the_reference_script():
    """Fixed returns and truncation at 10, in-place evaluation to 1e-4: the reference's
    sweeps, policies and values (car_rental.py's figure_4_2, instrumented to print them)."""
    mdp = mdp_of(JacksCarRentalEnv(poisson_returns=False, max_poisson=10))
    policies, v, sweeps, changes = policy_iteration(mdp, in_place_theta=1e-4)
    assert sweeps == [86, 58, 52, 17, 11]
    assert changes == [332, 286, 83, 19, 0]
    expected = np.array([row.split() for row in REF_FIXED_POLICY.split("\n") if row], int)
    np.testing.assert_array_equal(as_grid(policies[-1])[::-1], expected)
    grid = v[:441].reshape(21, 21)
    ref = {(0, 0): 415.767815, (10, 10): 566.591639, (20, 20): 625.644898, (20, 0): 546.446262,
           (0, 20): 560.731978, (5, 15): 570.077802}
    for (a, b), value in ref.items():
        assert abs(grid[a, b] - value) < 1e-6


@pytest.mark.parametrize("poisson_returns", [True, False])
def test_figure_4_2_exact_model(poisson_returns):
    """The exact model (no truncation): policy iteration with exact evaluation stops after
    pi_4, as the book's figure, for both return models. pi_0 moves nothing; pi_4 moves up to
    5 cars to the second location and up to 4 back (the book's contours 5 .. -4 for Poisson
    returns). Its values lie within the book's plotted range, from about 420 to about 640."""
    mdp = mdp_of(JacksCarRentalEnv(poisson_returns=poisson_returns))
    policies, v, _, changes = policy_iteration(mdp)
    assert len(policies) == 5 and changes[-1] == 0
    assert (as_grid(policies[0]) == 0).all()
    final = as_grid(policies[-1])
    assert final.max() == 5 and final.min() == -4
    assert final[20, 0] == 5 and final[0, 20] == -4 and final[10, 10] == 0
    assert 420 < v[:441].min() < 435 and 630 < v[:441].max() < 650
    # exact evaluation agrees with in-place sweeps to theta = 1e-4 on every policy
    policies_sweep, v_sweep, _, _ = policy_iteration(mdp, in_place_theta=1e-4)
    assert all((a == b).all() for a, b in zip(policies, policies_sweep, strict=True))
    np.testing.assert_allclose(v_sweep, v, atol=1e-3)


def test_truncation_effect_on_figure_4_2():
    """What the reference's truncation at 10 costs (measured): about 3% of the values
    (15 to 20 dollars) and a different pi_2 .. pi_4, for fixed returns."""
    exact = policy_iteration(mdp_of(JacksCarRentalEnv(poisson_returns=False)))
    trunc = policy_iteration(mdp_of(JacksCarRentalEnv(poisson_returns=False, max_poisson=10)))
    diff = exact[1][:441] - trunc[1][:441]
    assert diff.min() > 14 and diff.max() < 19
    assert (exact[0][1] == trunc[0][1][:441]).all()
    assert not (exact[0][-1] == trunc[0][-1][:441]).all()


# ---- Figure 4.3 -------------------------------------------------------------------------------
# gamblers_problem.py's figure_4_3 (in-place value iteration to 1e-9), values at capitals
GAMBLER_CAPITALS = [1, 10, 25, 40, 50, 60, 75, 90, 99]
REF_GAMBLER_SWEEPS = {
    1: [0.0, 0.0, 0.0, 0.0, 0.4, 0.4, 0.64, 0.784, 0.953344],
    2: [0.0, 0.0, 0.16, 0.256, 0.4, 0.44416, 0.64, 0.7998976, 0.963836748],
    3: [0.0, 0.0, 0.16, 0.2665984, 0.4, 0.46144, 0.64, 0.8061184, 0.964320477],
    17: [0.002065625, 0.043463497, 0.16, 0.271646859, 0.4, 0.465195246, 0.64, 0.807470289,
         0.964332967],
}
# its final policy (the book's lower panel), stakes for capital 1..99
REF_GAMBLER_POLICY = (list(range(1, 13)) + list(range(12, 0, -1)) + [25]
                      + list(range(1, 13)) + list(range(12, 0, -1)) + [50]
                      + list(range(1, 13)) + list(range(12, 0, -1)) + [25]
                      + list(range(1, 13)) + list(range(12, 0, -1)))


def test_figure_4_3_value_iteration_and_final_stakes():
    mdp = mdp_of(GamblersProblemEnv())
    v, n, history = np.zeros(101), 0, {}
    while True:
        delta = mdp.optimality_sweep(v, in_place=True)
        n += 1
        history[n] = v.copy()
        if delta < 1e-9:
            break
    assert n == 17
    for k, expected in REF_GAMBLER_SWEEPS.items():
        np.testing.assert_allclose(history[k][GAMBLER_CAPITALS], expected, atol=1e-9)
    assert len(REF_GAMBLER_POLICY) == 99
    assert dp.first_greedy(mdp.q(v))[1:100].tolist() == REF_GAMBLER_POLICY
    # exact v* (policy iteration): the same smallest optimal stakes with exact ties
    v_star, _, _ = dp.solve_optimal(mdp)
    np.testing.assert_allclose(v_star, v, atol=1e-8)
    assert dp.first_greedy(mdp.q(v_star), atol=1e-12, rtol=0)[1:100].tolist() == \
        REF_GAMBLER_POLICY
    # bold play is optimal as well (the optimal policy is not unique)
    bold = np.minimum(np.arange(101), 100 - np.arange(101))
    assert dp.greedy_mask(mdp.q(v_star))[np.arange(1, 100), bold[1:100]].all()


def test_figure_4_3_synchronous_sweeps():
    """Synchronous value iteration needs 31 sweeps to 1e-9 (the book's figure shows sweep 32
    as its last); its sweep 1 is 0.4 from 50 on (one bet reaches the goal), 0 below."""
    mdp = mdp_of(GamblersProblemEnv())
    v, n = np.zeros(101), 0
    while True:
        delta = mdp.optimality_sweep(v)
        n += 1
        if n == 1:
            np.testing.assert_allclose(v[1:100], np.where(np.arange(1, 100) >= 50, 0.4, 0.0))
        if delta < 1e-9:
            break
    assert n == 31


# ---- the DP module's contract -------------------------------------------------------------
def test_gamma_one_on_a_continuing_task_is_refused():
    for env in (GridworldEnv(), JacksCarRentalEnv(poisson_returns=False)):
        with pytest.raises(ConfigError, match="gamma=1 on .*continuing task"):
            dp.MDP(model_from_env(env), 1.0)
    dp.MDP(model_from_env(SmallGridworldEnv()), 1.0)  # episodic: fine


def test_improper_policy_with_gamma_one_is_named():
    mdp = mdp_of(SmallGridworldEnv())
    always_up = dp.deterministic(np.zeros(16, dtype=int), 4)  # the top row bumps forever
    with pytest.raises(dp.ImproperPolicyError, match="never reaches a terminal state"):
        mdp.evaluate(always_up)
    v = mdp_of(SmallGridworldEnv(), gamma=0.9).evaluate(always_up)
    assert np.isclose(v[1], -10.0)  # stuck at -1 per step: -1 / (1 - 0.9)


def test_policy_shape_errors_name_the_env_shape():
    mdp = mdp_of(SmallGridworldEnv())
    with pytest.raises(ConfigError, match=r"expected \(16, 4\)"):
        mdp.evaluate(np.full((15, 4), 0.25))
    with pytest.raises(ConfigError, match="invalid action in state 1"):
        bad = dp.uniform_policy(np.ones((101, 51), bool))
        mdp_of(GamblersProblemEnv()).evaluate(bad)


def test_improve_keeps_tied_actions_and_counts_changes():
    q = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 0.0]])
    new, changes = dp.improve(q, np.array([1, 0, 0]))
    assert new.tolist() == [1, 1, 0] and changes == 1
    assert dp.first_greedy(q).tolist() == [0, 1, 0]


def test_tiny_mdp_by_hand():
    """Two states, one action: v = r / (1 - gamma p) solved by hand, and q of it."""
    P = np.zeros((2, 1, 2))
    P[0, 0] = [0.5, 0.5]
    P[1, 0, 1] = 1.0
    R = np.zeros((2, 1, 2))
    R[0, 0] = [1.0, 3.0]
    done = np.zeros((2, 1, 2), bool)
    done[0, 0, 1] = True
    done[1, 0, 1] = True
    m = TabularModel(2, 1, P, R, np.zeros((2, 1)), done, np.array([1.0, 0.0]),
                     np.ones((2, 1), bool), np.array([False, True]))
    mdp = dp.MDP(m, 0.5)
    v = mdp.evaluate(np.ones((2, 1)))
    # v0 = 0.5 (1 + 0.5 v0) + 0.5 * 3  ->  v0 = 2 / 0.75
    np.testing.assert_allclose(v, [2.0 / 0.75, 0.0])
    np.testing.assert_allclose(mdp.q(v)[:, 0], [2.0 / 0.75, 0.0])


# ---- mu_pi ---------------------------------------------------------------------------------
def test_on_policy_distribution_episodic_equals_expected_visits():
    """Episodic: mu is eta / sum(eta) with eta = h (I - P_pi)^-1 (book section 9.2)."""
    mdp = mdp_of(SmallGridworldEnv())
    pi = dp.uniform_policy(mdp.valid)
    mu, sweeps = dp.on_policy_distribution(mdp, pi)
    P, _ = mdp.policy_model(pi)
    eta = np.linalg.solve((np.eye(16) - P).T, mdp.initial)
    np.testing.assert_allclose(mu, eta / eta.sum(), atol=1e-9)
    assert mu[[0, 15]].sum() == 0 and sweeps > 10


def test_on_policy_distribution_continuing_and_pagerank():
    mdp = mdp_of(GridworldEnv())
    pi = dp.uniform_policy(mdp.valid)
    P, _ = mdp.policy_model(pi)
    mu, _ = dp.on_policy_distribution(mdp, pi)
    np.testing.assert_allclose(mu @ P, mu, atol=1e-10)  # stationary
    assert mu[GridworldEnv.A_PRIME] > mu[GridworldEnv.A]  # A is left at once, A' is entered
    # restart = 1 - gamma: the discounted visitation (1 - g) h (I - g P)^-1
    g = 0.9
    d, _ = dp.on_policy_distribution(mdp, pi, restart=1 - g)
    np.testing.assert_allclose(d, (1 - g) * np.linalg.solve((np.eye(25) - g * P).T,
                                                            mdp.initial), atol=1e-10)
    with pytest.raises(ConfigError, match="restart"):
        dp.on_policy_distribution(mdp, pi, restart=1.0)


def test_policy_agreement():
    mask = np.array([[True, False], [True, True], [False, True]])
    assert dp.policy_agreement(np.array([0, 1, 0]), mask) == 2 / 3
    assert dp.policy_agreement(np.array([0, 1, 0]), mask, states=np.array([0, 1])) == 1.0


def test_benchmark_script_runs_rlrun_side(capsys):
    """scripts/bench_sutton_barto.py without --reference: rlrun's side only, book digits."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_sutton_barto.py"
    spec = importlib.util.spec_from_file_location("bench_sutton_barto", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--figures", "3.2", "3.5", "4.3", "--repeat", "1", "--no-commands"])
    out = capsys.readouterr().out
    assert "top row 3.3 8.8 4.4 5.3 1.5" in out and "top row 22.0 24.4 22.0 19.4 17.5" in out
    assert "17 sweeps, stakes at 25/50/51: 25/50/1" in out


@pytest.mark.parametrize("env_id, v_start", [
    ("rlrun/WindyGridworld-v0", -15.0),  # 15 steps (Example 6.5)
    ("rlrun/CliffWalkingBook-v0", -13.0),  # along the cliff (Example 6.6)
    ("Taxi-v4", None),
])
def test_solve_optimal_on_the_chapter_6_tasks(env_id, v_start):
    """v*(start), what eval/optimality_gap measures against. Taxi-v4 has 96 states no
    episode can be in and no policy leaves: with gamma=1 they keep value 0."""
    m = model_from_env(gymnasium.make(env_id))
    mdp = dp.MDP(m, 1.0)
    v, actions, _ = dp.solve_optimal(mdp)
    if v_start is not None:
        assert np.isclose(v @ m.initial, v_start)
    else:
        assert 7.5 < v @ m.initial < 8.5  # about 20 - 12 steps of a random start
        pi = dp.deterministic(actions, m.n_actions)
        stuck = dp.never_terminates(mdp.policy_model(pi)[0], m.terminal)
        assert stuck.sum() == 96 and not (stuck & dp.reachable(mdp.policy_model(pi)[0],
                                                                m.initial)).any()
