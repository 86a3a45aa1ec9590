"""Dynamic programming on a known tabular MDP (Sutton & Barto chapters 3 and 4), in NumPy.

The loops call these one step at a time, so that they can log each sweep themselves:

    mdp = MDP(model, gamma)                 # refuses gamma = 1 on a continuing task
    v = mdp.evaluate(pi)                    # exact v_pi: (I - gamma P_pi) v = r_pi
    pol = mdp.policy_model(pi)              # P_pi, r_pi of one policy, for its sweeps
    delta = mdp.evaluation_sweep(v, pol, in_place=False)     # dp/delta of one sweep
    delta = mdp.optimality_sweep(v, in_place=True)           # value iteration's sweep
    q = mdp.q(v)                            # one-step lookahead, -inf on invalid actions
    actions, changes = improve(q, actions)  # dp/policy_changes of one round
    mu, sweeps = on_policy_distribution(mdp, pi)   # chapter 9's mu_pi, PageRank's way

Policies are (S, A) arrays of action probabilities; `deterministic(actions, A)` makes one
from an action per state. Values of terminal states are 0 and stay 0.

**Ties.** The greedy actions of a state are the valid actions whose q is within
`atol + rtol * |max q|` of the largest (`greedy_mask`: what values.json lists). A policy
picks the lowest-numbered of them (`first_greedy`), and policy improvement keeps the current
action while it is still among them (`improve`), so policy iteration cannot cycle between
equally good policies (the book's Exercise 4.4) and every run breaks ties the same way. How
the book's figures break them:

* Figure 4.1 draws every greedy action (arrows in all tied directions): `greedy_mask`.
* Figure 4.2 (the reference code's `np.argmax` over moves -5..5) takes the first maximal
  move, the most negative one; here action 0 is move -5, so `first_greedy` agrees.
* Figure 4.3's final policy is the smallest optimal stake (of at least 1): `first_greedy`
  on exact v* (policy iteration) gives it with any atol from 1e-12 to 1e-5, and so does
  value iteration stopped at theta = 1e-9 with atol >= 1e-9 (atol must exceed the error left
  in v). The reference code gets it by rounding q to 5 decimals first. Bold play (stake
  min(s, 100 - s)) is optimal too: the gambler's optimal policy is not unique.
"""

from __future__ import annotations

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.model import TabularModel


class ImproperPolicyError(ConfigError):
    """With gamma = 1, the policy never reaches a terminal state from some states."""


def is_continuing(model: TabularModel) -> bool:
    """True when no valid action of any non-terminal state can end an episode."""
    ending = np.where(model.done, model.P, 0.0).sum(axis=2)  # (S, A) mass that terminates
    return not (ending[~model.terminal] * model.valid[~model.terminal] > 0).any()


class MDP:
    """The arrays every Bellman backup uses, computed once for a model and a discount.

    `p[s, a, s']` is the probability of moving to s' *and going on* (terminating
    transitions are left out: the value after them is 0), `r[s, a]` the expected reward.
    Rows of terminal states are zero, so their values stay 0.
    """

    def __init__(self, model: TabularModel, gamma: float, name: str = "this env"):
        gamma = float(gamma)
        if not 0.0 <= gamma <= 1.0:
            raise ConfigError(f"gamma={gamma} must be in [0, 1]")
        if gamma == 1.0 and is_continuing(model):
            raise ConfigError(
                f"gamma=1 on {name}, a continuing task with no terminal state: the values "
                f"are infinite and evaluation would not converge; use gamma < 1 (the book "
                f"uses 0.9)"
            )
        self.model, self.gamma, self.name = model, gamma, name
        self.S, self.A = model.n_states, model.n_actions
        live = ~model.terminal
        self.p = np.where(model.done, 0.0, model.P) * live[:, None, None]
        self.r = model.expected_reward() * live[:, None]
        self.valid, self.terminal, self.initial = model.valid, model.terminal, model.initial
        self._p2 = self.p.reshape(self.S * self.A, self.S)
        self._live = np.flatnonzero(live)
        self._r_valid = np.where(self.valid, self.r, -np.inf)  # max over valid actions

    def q(self, v: np.ndarray) -> np.ndarray:
        """q(s, a) = r(s, a) + gamma sum_s' p(s'|s, a) v(s'); -inf where a is invalid."""
        q = self.r + self.gamma * (self._p2 @ v).reshape(self.S, self.A)
        return np.where(self.valid, q, -np.inf)

    def policy_model(self, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P_pi (S, S), r_pi (S,)) of a policy: the chain its evaluation solves."""
        pi = self.check_policy(pi)
        return np.einsum("sa,sat->st", pi, self.p), np.einsum("sa,sa->s", pi, self.r)

    def check_policy(self, pi: np.ndarray) -> np.ndarray:
        pi = np.asarray(pi, dtype=float)
        if pi.shape != (self.S, self.A):
            raise ConfigError(
                f"policy has shape {pi.shape}, but {self.name} has {self.S} states and "
                f"{self.A} actions: expected ({self.S}, {self.A})"
            )
        live = ~self.terminal
        if (pi < 0).any() or not np.allclose(pi[live].sum(axis=1), 1.0, atol=1e-9):
            raise ConfigError("policy rows must be probabilities that sum to 1")
        bad = live & (pi * ~self.valid > 0).any(axis=1)
        if bad.any():
            raise ConfigError(f"policy chooses an invalid action in state {np.argmax(bad)}")
        return pi

    def evaluate(self, pi: np.ndarray) -> np.ndarray:
        """Exact v_pi by solving (I - gamma P_pi) v = r_pi over the non-terminal states.

        With gamma = 1, a state from which pi never ends the episode has no value: if the
        start distribution can lead there, ImproperPolicyError; if not (Taxi-v4's 96
        states that no episode can be in), its value is left at 0."""
        P, r = self.policy_model(pi)
        solve = ~self.terminal
        if self.gamma == 1.0:
            stuck = never_terminates(P, self.terminal)
            if stuck.any():
                reached = stuck & reachable(P, self.initial)
                if reached.any():
                    raise ImproperPolicyError(
                        f"with gamma=1 the policy never reaches a terminal state of "
                        f"{self.name} from state {int(np.argmax(reached))} "
                        f"({int(reached.sum())} states): its values are not defined; use "
                        f"gamma < 1 or a policy that ends episodes"
                    )
                solve &= ~stuck
        live = np.flatnonzero(solve)
        v = np.zeros(self.S)
        A = np.eye(live.size) - self.gamma * P[np.ix_(live, live)]
        v[live] = np.linalg.solve(A, r[live])
        return v

    def evaluation_sweep(self, v: np.ndarray, policy_model: tuple[np.ndarray, np.ndarray],
                         in_place: bool = False) -> float:
        """One sweep of iterative policy evaluation on `v` (changed in place); returns
        max |change| (`dp/delta`). Synchronous: every state from the old values. In place:
        states in index order, each from the values already updated in this sweep."""
        P, r = policy_model
        if not in_place:
            new = r + self.gamma * (P @ v)
            delta = float(np.abs(new - v).max())
            v[:] = new
            return delta
        delta = 0.0
        for s in self._live:
            new = r[s] + self.gamma * (P[s] @ v)
            delta = max(delta, abs(new - v[s]))
            v[s] = new
        return float(delta)

    def optimality_sweep(self, v: np.ndarray, in_place: bool = False) -> float:
        """One sweep of value iteration, v(s) <- max_a q(s, a), on `v` (changed in place);
        returns max |change|. In place: states in index order, as the reference scripts."""
        if not in_place:
            new = self.q(v).max(axis=1)
            new[self.terminal] = 0.0
            delta = float(np.abs(new - v).max())
            v[:] = new
            return delta
        delta = 0.0
        p, g, r = self.p, self.gamma, self._r_valid
        for s in self._live:
            new = (r[s] + g * (p[s] @ v)).max()
            delta = max(delta, abs(new - v[s]))
            v[s] = new
        return float(delta)


def never_terminates(P_pi: np.ndarray, terminal: np.ndarray) -> np.ndarray:
    """(S,) bool: non-terminal states from which the chain P_pi (continuation only) never
    ends an episode, i.e. cannot reach a state that has terminating probability."""
    ends = (P_pi.sum(axis=1) < 1.0 - 1e-12) & ~terminal
    reach = ends.copy()
    edges = P_pi > 0
    while True:
        more = edges[:, reach].any(axis=1) & ~reach & ~terminal
        if not more.any():
            break
        reach |= more
    return ~reach & ~terminal


def reachable(P_pi: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """(S,) bool: states the chain P_pi can be in, starting from `initial`."""
    reach = initial > 0
    edges = P_pi > 0
    while True:
        more = edges[reach].any(axis=0) & ~reach
        if not more.any():
            return reach
        reach |= more


def uniform_policy(valid: np.ndarray) -> np.ndarray:
    """(S, A) uniform over the valid actions of each state (the book's random policy)."""
    return valid / valid.sum(axis=1, keepdims=True)


def deterministic(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """(S, A) one-hot policy from one action per state."""
    pi = np.zeros((len(actions), n_actions))
    pi[np.arange(len(actions)), actions] = 1.0
    return pi


def greedy_mask(q: np.ndarray, atol: float = 1e-9, rtol: float = 1e-9) -> np.ndarray:
    """(S, A) bool: the actions within atol + rtol |max| of each state's best (see ties)."""
    best = q.max(axis=1, keepdims=True)
    return q >= best - (atol + rtol * np.abs(best))


def first_greedy(q: np.ndarray, atol: float = 1e-9, rtol: float = 1e-9) -> np.ndarray:
    """(S,) the lowest-numbered greedy action of each state."""
    return greedy_mask(q, atol, rtol).argmax(axis=1)


def improve(q: np.ndarray, actions: np.ndarray, atol: float = 1e-9,
            rtol: float = 1e-9) -> tuple[np.ndarray, int]:
    """Policy improvement: (new actions, number of states whose action changed).

    A state keeps its action while that action is still greedy; otherwise it takes the
    lowest-numbered greedy action. Policy iteration stops when the count is 0."""
    mask = greedy_mask(q, atol, rtol)
    keep = mask[np.arange(len(actions)), actions]
    new = np.where(keep, actions, mask.argmax(axis=1))
    return new, int((new != actions).sum())


def policy_agreement(actions: np.ndarray, optimal_mask: np.ndarray,
                     states: np.ndarray | None = None) -> float:
    """Share of `states` (default: all) whose action is among the optimal ones
    (`greedy_mask` of q*): `eval/policy_agreement` of Monte Carlo ES against the exact model."""
    states = np.arange(len(actions)) if states is None else np.asarray(states)
    return float(optimal_mask[states, np.asarray(actions)[states]].mean())


def solve_optimal(mdp: MDP, max_rounds: int = 10_000) -> tuple[np.ndarray, np.ndarray, int]:
    """v* and a greedy optimal policy (actions) by policy iteration with exact evaluation,
    from the uniform random policy's greedy policy; returns (v*, actions, rounds).

    Exact to the linear solver's precision in a few rounds: the reference that chapter 6's
    `eval/optimality_gap` and Figure 5.2's policy agreement are measured against."""
    v = mdp.evaluate(uniform_policy(mdp.valid))
    actions = first_greedy(mdp.q(v))
    for rounds in range(1, max_rounds + 1):
        v = mdp.evaluate(deterministic(actions, mdp.A))
        actions, changes = improve(mdp.q(v), actions)
        if changes == 0:
            return v, actions, rounds
    raise ConfigError(f"policy iteration did not settle in {max_rounds} rounds")


def on_policy_distribution(mdp: MDP, pi: np.ndarray, restart: float = 0.0,
                           tol: float = 1e-12, max_sweeps: int = 1_000_000
                           ) -> tuple[np.ndarray, int]:
    """mu_pi by power iteration with restarts at the start distribution (PageRank's method).

    The chain follows pi; an episode's end restarts it from `mdp.initial`, and with
    `restart` > 0 it also restarts with that probability at every step (PageRank's
    teleport, 1 - damping). Its stationary distribution is returned with the sweeps taken:

    * restart = 0, episodic task: the fraction of time spent in each state, the on-policy
      distribution of Sutton & Barto section 9.2 (eta(s) normalised);
    * restart = 0, continuing task: the stationary distribution of P_pi;
    * restart = 1 - gamma: the normalised discounted visitation (1 - gamma) sum_t gamma^t
      P(S_t = s), PageRank with damping gamma personalised to the start distribution.

    Terminal states get 0. A periodic continuing chain has no limit for restart = 0: the
    iteration then stops at `max_sweeps` with a ConfigError.
    """
    if not 0.0 <= restart < 1.0:
        raise ConfigError(f"restart={restart} must be in [0, 1)")
    P, _ = mdp.policy_model(pi)
    h = mdp.initial
    go_on = 1.0 - restart
    ends = 1.0 - P.sum(axis=1)  # probability that the episode ends from s
    ends[mdp.terminal] = 0.0
    x = h.copy()
    for sweep in range(1, max_sweeps + 1):
        new = go_on * (x @ P + (x @ ends) * h) + restart * h
        new /= new.sum()
        if np.abs(new - x).sum() < tol:
            return new, sweep
        x = new
    raise ConfigError(
        f"the on-policy distribution did not converge in {max_sweeps} sweeps (a periodic "
        f"chain?); pass restart > 0"
    )
