"""Control rewards for the generator's RL: a positive control that must move, a null that must not.

A claim that the update raises the SIGnAL reward needs both, through the same path users run
(``scripts/bench_rl.py --reward``, ``signal-al check-rl``):

* ``classprob`` (positive): a confident classifier's probability of one target class, e.g. "write
  positive reviews". Learnable from a handful of updates if the machinery works.
* ``length`` (positive, trivially learnable): fewer words score higher.
* ``shuffled`` (null): the SIGnAL rewards permuted within each iteration, so they carry no
  information about the text they are attached to; the held-out reward must not move.

Every function maps texts (or scores) to one reward each, with NaN for a text that cleaning
dropped (left out of the update).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CONTROL_REWARDS = ("classprob", "length", "shuffled")
REWARD_KINDS = ("signal", *CONTROL_REWARDS)

__all__ = ["CONTROL_REWARDS", "REWARD_KINDS", "class_probability_reward", "length_reward", "shuffled_within"]


def length_reward(texts: Sequence[str | None], per_word: float = 0.1) -> np.ndarray:
    """``-per_word x words`` for each kept text (NaN for a dropped one, ``None``).

    >>> length_reward(["a b c", None, "one"]).tolist()
    [-0.30000000000000004, nan, -0.1]
    """
    return np.array([np.nan if t is None else -per_word * len(t.split()) for t in texts], dtype=np.float64)


def class_probability_reward(probs: np.ndarray, target: int) -> np.ndarray:
    """The probability of class ``target`` in each row of ``probs`` (rows of a classifier's softmax).

    >>> class_probability_reward(np.array([[0.2, 0.8], [0.9, 0.1]]), 1).tolist()
    [0.8, 0.1]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not 0 <= target < probs.shape[1]:
        raise ValueError(f"target class {target} is not a column of probabilities shaped {probs.shape}")
    return probs[:, target].copy()


def shuffled_within(rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same reward values over the kept texts in a random order (NaNs stay where they are).

    >>> values = shuffled_within(np.array([1.0, np.nan, 2.0, 3.0]), np.random.default_rng(0))
    >>> bool(np.isnan(values[1])), sorted(values[[0, 2, 3]].tolist())
    (True, [1.0, 2.0, 3.0])
    """
    rewards = np.asarray(rewards, dtype=np.float64).copy()
    kept = np.flatnonzero(~np.isnan(rewards))
    rewards[kept] = rewards[rng.permutation(kept)]
    return rewards
