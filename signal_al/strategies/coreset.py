"""Core-set (Sener & Savarese 2018): greedy k-center over the embeddings.

Each pick is the unlabeled item farthest from everything labeled or already picked, so the
batch covers the pool with the smallest radius (the greedy 2-approximation).
"""

from __future__ import annotations

import numpy as np

from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import l2_normalize
from signal_al.strategies.base import PoolView, QueryStrategy, as_rng, top_indices

__all__ = ["CoreSet"]


class CoreSet(QueryStrategy):
    """Greedy k-center: maximise the minimum distance to labeled ∪ selected."""

    name = "coreset"

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = normalize

    def _embeddings(self, pool: PoolView) -> np.ndarray:
        emb = pool.require_embeddings(self.name)
        return l2_normalize("embeddings", emb) if self.normalize else emb

    def _distance_to_labeled(self, pool: PoolView, emb: np.ndarray) -> np.ndarray:
        if pool.labeled.size == 0:
            return np.zeros(len(pool.unlabeled))
        dist, _ = LabeledIndex(emb[pool.labeled]).search(emb[pool.unlabeled], 1)
        return dist[:, 0]

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Distance to the nearest labeled item (zeros when nothing is labeled yet)."""
        return self._distance_to_labeled(pool, self._embeddings(pool))

    def query(self, pool: PoolView, budget: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        budget = self.check_budget(pool, budget)
        rng = as_rng(rng)
        emb = self._embeddings(pool)
        x = emb[pool.unlabeled]
        sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        min_d = self._distance_to_labeled(pool, emb) if pool.labeled.size else np.full(len(x), np.inf)
        chosen: list[int] = []
        for _ in range(budget):
            if np.isinf(min_d).all():  # nothing labeled yet: the first centre is random
                c = int(rng.integers(len(x)))
            else:
                c = int(top_indices(min_d, 1, rng)[0])
            chosen.append(c)
            d2 = sq + sq[c] - 2.0 * (x @ x[c]).astype(np.float64)
            np.minimum(min_d, np.sqrt(np.maximum(d2, 0.0)), out=min_d)
            min_d[c] = -1.0  # never again
        return pool.unlabeled[np.asarray(chosen, dtype=np.int64)]
