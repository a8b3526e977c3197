"""Entropy sampling: the items whose predicted class distribution is most uncertain."""

from __future__ import annotations

import numpy as np

from signal_al.neighbors.divergence import safe_log
from signal_al.strategies.base import PoolView, RankingStrategy

__all__ = ["EntropySampling", "predictive_entropy"]


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """-Σ p log p per row in nats (0·log 0 = 0)."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.maximum(-(probs * safe_log(probs)).sum(axis=1), 0.0)


class EntropySampling(RankingStrategy):
    """Highest predictive entropy first."""

    name = "entropy"

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        return predictive_entropy(pool.probs[pool.unlabeled])
