"""Action selection over tables, vectorised across runs (shared by bandits and tabular TD).

Tables are arms-major, shape (n_actions, n): NumPy reduces over the short action axis far
faster this way than over the last axis of an (n, n_actions) array.
"""

from __future__ import annotations

import numpy as np


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Column-wise argmax of a (k, n) array, ties broken uniformly at random.

    `np.argmax` alone would always pick the lowest action, which biases greedy methods (the
    book breaks ties at random). Large arrays draw random numbers only for tied columns.
    """
    k = values.shape[0]
    ties = values == values.max(axis=0)
    if values.size <= 4096:  # small: drawing for every entry costs less than finding ties
        return (rng.random(values.shape) * ties).argmax(axis=0)
    desc = np.arange(k, 0, -1, dtype=np.int32)[:, None]
    actions = k - (ties * desc).max(axis=0)  # first maximal action
    tied = np.flatnonzero(np.add.reduce(ties, axis=0, dtype=np.int32) > 1)
    if tied.size:
        actions[tied] = (rng.random((k, tied.size)) * ties[:, tied]).argmax(axis=0)
    return actions


def epsilon_greedy_probs(values: np.ndarray, epsilon: float,
                         valid: np.ndarray | None = None) -> np.ndarray:
    """The epsilon-greedy policy's probabilities, (k, n), as the sampling above realises it.

    epsilon is spread over the valid actions; 1 - epsilon over the maximal ones, split evenly
    between ties (the expectation over random tie-breaking). Expected Sarsa needs these.
    """
    if valid is not None:
        values = np.where(valid, values, -np.inf)
    ties = values == values.max(axis=0)
    n_valid = values.shape[0] if valid is None else valid.sum(axis=0)
    probs = (1.0 - epsilon) * ties / ties.sum(axis=0)
    explore = epsilon / n_valid
    return probs + (explore if valid is None else explore * valid)
