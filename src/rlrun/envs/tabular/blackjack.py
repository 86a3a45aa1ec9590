"""Blackjack of Sutton & Barto Example 5.1, exactly: a finite MDP model and a card simulator.

The rules are those of Gymnasium's `Blackjack-v1` with `sab=True`: an infinite deck (each
draw is 1..9 with probability 1/13, 10 with 4/13), the dealer hits below 17 and sticks on
any 17 (soft ones too), a natural (ace + ten as the first two cards) wins unless the dealer
also has one (then it is a draw), and a player's three-card 21 draws with the dealer's 21.
As in the book, the player's decisions start at a sum of 12: below it the player always
hits (the deal includes those cards).

States (213): 0..199 the book's decision states, index usable * 100 + (sum - 12) * 10 +
(dealer card - 1), so `v[:200].reshape(2, 10, 10)` is [usable ace][player sum][dealer card];
200..209 a natural with the dealer showing 1..10 (sticking on it is not the same bet as on
another 21, so it is its own state; Gymnasium shows both as (21, d, 1)); 210, 211, 212 the
terminal states win, draw and lose, entered with rewards +1, 0 and -1. Actions: 0 stick,
1 hit (Gymnasium's order).

`BlackjackSim` plays many episodes at once by drawing cards, not from the model, so that the
two can be checked against each other (and against Gymnasium) in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import numpy as np

from rlrun.core.errors import ConfigError
from rlrun.envs.tabular.dense import DenseTabularEnv

CARD_P = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 4]) / 13.0  # P(card = 1..10)
STICK, HIT = 0, 1
N_DECISION = 200
NATURAL = 200  # + dealer card - 1
WIN, DRAW, LOSE = 210, 211, 212
N_STATES = 213


def state_index(usable: np.ndarray | int, player_sum: np.ndarray | int,
                dealer: np.ndarray | int) -> np.ndarray | int:
    """Index of the decision state (usable ace 0/1, player sum 12..21, dealer card 1..10)."""
    return usable * 100 + (player_sum - 12) * 10 + (dealer - 1)


def state_label(s: int) -> str:
    if s < N_DECISION:
        usable, rest = divmod(s, 100)
        total, dealer = divmod(rest, 10)
        return f"sum {total + 12}, dealer {dealer + 1}, " + ("usable ace" if usable else "no ace")
    if s < WIN:
        return f"natural, dealer {s - NATURAL + 1}"
    return {WIN: "win", DRAW: "draw", LOSE: "lose"}[s]


def _value(hard: int, ace: bool) -> tuple[int, bool]:
    """Best total of a hand with this hard total (aces as 1), and whether an ace counts 11."""
    if ace and hard + 10 <= 21:
        return hard + 10, True
    return hard, False


@cache
def _dealer_from(hard: int, ace: bool) -> tuple[float, ...]:
    """P(dealer ends on 17, 18, 19, 20, 21, bust) from a hand (hard total, holds an ace)."""
    total, _ = _value(hard, ace)
    out = np.zeros(6)
    if total > 21:
        out[5] = 1.0
    elif total >= 17:
        out[total - 17] = 1.0
    else:
        for card in range(1, 11):
            out += CARD_P[card - 1] * np.array(_dealer_from(hard + card, ace or card == 1))
    return tuple(out)


def dealer_outcomes(showing: int) -> np.ndarray:
    """P(dealer's final total is 17, 18, 19, 20, 21, bust | the card showing), hidden card
    included (the deck is infinite, so it is independent of the player's cards)."""
    out = np.zeros(6)
    for hidden in range(1, 11):
        out += CARD_P[hidden - 1] * np.array(
            _dealer_from(showing + hidden, showing == 1 or hidden == 1))
    return out


def dealer_natural(showing: int) -> float:
    """P(the dealer's two cards are an ace and a ten | the card showing)."""
    return CARD_P[9] if showing == 1 else CARD_P[0] if showing == 10 else 0.0


def _stick_outcome(total: int, showing: int) -> tuple[float, float, float]:
    """P(win, draw, lose) when a player without a natural sticks on `total`."""
    d = dealer_outcomes(showing)
    finals = np.arange(17, 22)
    win = d[5] + d[:5][finals < total].sum()
    draw = d[:5][finals == total].sum()
    return win, draw, 1.0 - win - draw


def _deal_distribution() -> np.ndarray:
    """P(first state) over the 210 non-terminal states: two cards each, the dealer's first
    face up, the player hitting until his total reaches 12."""
    natural = 0.0
    # P(player reaches each (usable, total >= 12)) through the hits below 12, naturals apart
    frontier: dict[tuple[int, bool], float] = {}
    for c1 in range(1, 11):
        for c2 in range(1, 11):
            p = CARD_P[c1 - 1] * CARD_P[c2 - 1]
            if {c1, c2} == {1, 10}:
                natural += p
                continue
            key = (c1 + c2, c1 == 1 or c2 == 1)
            frontier[key] = frontier.get(key, 0.0) + p
    decision = np.zeros((2, 10))  # [usable, total - 12]
    while frontier:
        nxt: dict[tuple[int, bool], float] = {}
        for (hard, ace), p in frontier.items():
            total, usable = _value(hard, ace)
            if total >= 12:
                decision[int(usable), total - 12] += p
                continue
            for card in range(1, 11):
                key = (hard + card, ace or card == 1)
                nxt[key] = nxt.get(key, 0.0) + p * CARD_P[card - 1]
        frontier = nxt
    init = np.zeros(N_STATES)
    for d in range(1, 11):
        for usable in (0, 1):
            for total in range(12, 22):
                init[state_index(usable, total, d)] = CARD_P[d - 1] * decision[usable, total - 12]
        init[NATURAL + d - 1] = CARD_P[d - 1] * natural
    return init


def blackjack_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense (P, R, done, initial) of the exact infinite-deck model."""
    S, A = N_STATES, 2
    P, R = np.zeros((S, A, S)), np.zeros((S, A, S))
    done = np.zeros((S, A, S), dtype=bool)
    R[:, :, WIN], R[:, :, LOSE] = 1.0, -1.0
    done[:, :, [WIN, DRAW, LOSE]] = True
    for s in range(N_DECISION + 10):
        if s >= NATURAL:
            d, usable, total = s - NATURAL + 1, 1, 21
            p_dn = dealer_natural(d)
            P[s, STICK, WIN], P[s, STICK, DRAW] = 1.0 - p_dn, p_dn
        else:
            usable, rest = divmod(s, 100)
            total, d = rest // 10 + 12, rest % 10 + 1
            P[s, STICK, [WIN, DRAW, LOSE]] = _stick_outcome(total, d)
        for card in range(1, 11):
            p = CARD_P[card - 1]
            new = total + card  # an ace drawn at 12 or more counts 1
            if usable and new > 21:
                P[s, HIT, state_index(0, new - 10, d)] += p
            elif new > 21:
                P[s, HIT, LOSE] += p
            else:
                P[s, HIT, state_index(usable, new, d)] += p
    for t in (WIN, DRAW, LOSE):  # absorbing, reward 0, as every terminal state here
        P[t, :, :], R[t, :, :] = 0.0, 0.0
        P[t, :, t] = 1.0
    done[:N_DECISION + 10] &= P[:N_DECISION + 10] > 0
    done[N_DECISION + 10:] = False
    for t in (WIN, DRAW, LOSE):
        done[t, :, t] = True
    R[P == 0] = 0.0
    return P, R, done, _deal_distribution()


class BlackjackBookEnv(DenseTabularEnv):
    """Blackjack (Example 5.1) as a Gymnasium env over the exact model; see the module
    docstring for the states. Episodes start from the deal (`initial_state_distrib`)."""

    TARGET_STICK: ClassVar[int] = 20  # the policy of Figure 5.1 sticks on 20 and 21
    book_policy_name: ClassVar[str] = "stick on 20 or 21"

    def __init__(self, render_mode: str | None = None):
        P, R, done, initial = blackjack_arrays()
        terminal = np.zeros(N_STATES, dtype=bool)
        terminal[[WIN, DRAW, LOSE]] = True
        self.grid_shape = None
        self._setup(P, R, done, initial, np.ones((N_STATES, 2), dtype=bool), terminal,
                    render_mode, 1.0, [state_label(s) for s in range(N_STATES)],
                    ["stick", "hit"])

    def book_policy(self) -> np.ndarray:
        """The policy the book evaluates (Figures 5.1 and 5.3): stick on 20 or 21."""
        return stick_on(self.TARGET_STICK)


def stick_on(threshold: int = 20) -> np.ndarray:
    """(S, 2) one-hot policy that sticks on `threshold` or more (Figure 5.1: 20), and on a
    natural; terminal rows stick (never used)."""
    pi = np.zeros((N_STATES, 2))
    total = np.full(N_STATES, 21)
    total[:N_DECISION] = (np.arange(N_DECISION) % 100) // 10 + 12
    stick = total >= threshold
    pi[stick, STICK] = 1.0
    pi[~stick, HIT] = 1.0
    return pi


@dataclass
class Episodes:
    """A batch of episodes, padded: row i holds episode i's `lengths[i]` decisions.

    `states` and `actions` are -1 after the end; `rewards[i, t]` is the reward after
    decision t (blackjack pays only at the end: rewards[i, lengths[i] - 1] = the outcome).
    """

    states: np.ndarray  # (n, L) int16
    actions: np.ndarray  # (n, L) int8
    rewards: np.ndarray  # (n, L) float64
    lengths: np.ndarray  # (n,) int64

    @property
    def outcome(self) -> np.ndarray:
        """Each episode's undiscounted return (its last reward in blackjack)."""
        return self.rewards.sum(axis=1)


class BlackjackSim:
    """Plays many blackjack episodes at once by drawing cards (numpy, one step for all).

    The dealer's hand is dealt at the start (face-up card in the state, hidden card drawn)
    and played out, all tables together, after the player sticks.
    """

    MAX_DECISIONS: ClassVar[int] = 11  # from 12, ten aces reach 22: at most 11 decisions

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def cards(self, n: int) -> np.ndarray:
        return np.minimum(self.rng.integers(1, 14, size=n), 10)

    def play(self, policy: np.ndarray, n: int | None = None,
             start_states: np.ndarray | None = None,
             start_actions: np.ndarray | None = None) -> Episodes:
        """`n` episodes from the deal, or one from each of `start_states` (decision or
        natural states, e.g. exploring starts), taking `start_actions` first when given.

        `policy` is (213, 2) action probabilities (one-hot for a deterministic policy;
        rows of ties split evenly break them at random at every step)."""
        if (start_states is None) == (n is None):
            raise ConfigError("BlackjackSim.play needs either n or start_states")
        policy = np.asarray(policy, dtype=float)
        if policy.shape != (N_STATES, 2):
            raise ConfigError(f"policy has shape {policy.shape}, expected ({N_STATES}, 2)")
        if start_states is None:
            total, usable, dealer, natural = self._deal(n)
        else:
            start_states = np.asarray(start_states, dtype=np.int64)
            n = len(start_states)
            if (start_states < 0).any() or (start_states >= WIN).any():
                raise ConfigError("start_states must be decision or natural states (0..209)")
            natural = start_states >= NATURAL
            dec = np.where(natural, 0, start_states)
            usable = np.where(natural, 1, dec // 100)
            total = np.where(natural, 21, (dec % 100) // 10 + 12)
            dealer = np.where(natural, start_states - NATURAL + 1, dec % 10 + 1)
        hidden = self.cards(n)
        L = self.MAX_DECISIONS
        states = np.full((n, L), -1, dtype=np.int16)  # small: a batch can be 10^6 episodes
        actions = np.full((n, L), -1, dtype=np.int8)
        rewards = np.zeros((n, L))
        lengths = np.zeros(n, dtype=np.int64)
        stuck = np.zeros(n, dtype=bool)  # the player stuck (dealer to play)
        alive = np.arange(n)
        p_hit = policy[:, HIT]
        for t in range(L):
            if alive.size == 0:
                break
            s = np.where(natural[alive], NATURAL + dealer[alive] - 1,
                         state_index(usable[alive], total[alive], dealer[alive]))
            if t == 0 and start_actions is not None:
                a = np.asarray(start_actions, dtype=np.int64)[alive]
            else:
                a = (self.rng.random(alive.size) < p_hit[s]).astype(np.int64)
            states[alive, t], actions[alive, t] = s, a
            lengths[alive] = t + 1
            stick = a == STICK
            stuck[alive[stick]] = True
            hit = alive[~stick]
            card = self.cards(hit.size)
            new = total[hit] + card
            soft = usable[hit] == 1
            convert = soft & (new > 21)
            new = np.where(convert, new - 10, new)
            usable[hit] = np.where(convert, 0, usable[hit])
            total[hit] = new
            natural[hit] = False
            bust = new > 21
            rewards[hit[bust], t] = -1.0
            alive = hit[~bust]
        idx = np.flatnonzero(stuck)
        if idx.size:
            outcome = self._showdown(total[idx], natural[idx], dealer[idx], hidden[idx])
            rewards[idx, lengths[idx] - 1] = outcome
        return Episodes(states, actions, rewards, lengths)

    def _deal(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c1, c2, dealer = self.cards(n), self.cards(n), self.cards(n)
        natural = ((c1 == 1) & (c2 == 10)) | ((c1 == 10) & (c2 == 1))
        hard, ace = c1 + c2, (c1 == 1) | (c2 == 1)
        total = np.where(ace & (hard + 10 <= 21), hard + 10, hard)
        low = np.flatnonzero(total < 12)
        while low.size:  # the book's player always hits below 12
            card = self.cards(low.size)
            hard[low] += card
            ace[low] |= card == 1
            total[low] = np.where(ace[low] & (hard[low] + 10 <= 21), hard[low] + 10, hard[low])
            low = low[total[low] < 12]
        usable = (ace & (hard + 10 == total)).astype(np.int64)
        return total, usable, dealer, natural

    def _showdown(self, player: np.ndarray, natural: np.ndarray, showing: np.ndarray,
                  hidden: np.ndarray) -> np.ndarray:
        """Play the dealers out and score against the players' totals (Gymnasium sab)."""
        hard = showing + hidden
        ace = (showing == 1) | (hidden == 1)
        dealer_natural = ace & (hard == 11)
        total = np.where(ace & (hard + 10 <= 21), hard + 10, hard)
        draw = np.flatnonzero(total < 17)
        while draw.size:
            card = self.cards(draw.size)
            hard[draw] += card
            ace[draw] |= card == 1
            total[draw] = np.where(ace[draw] & (hard[draw] + 10 <= 21), hard[draw] + 10,
                                   hard[draw])
            draw = draw[total[draw] < 17]
        dealer_score = np.where(total > 21, 0, total)
        out = np.sign(player - dealer_score).astype(float)
        return np.where(natural & ~dealer_natural, 1.0, out)
