"""BERT-KM (Yuan et al. 2020): k-means on L2-normalised embeddings, the item nearest each centre.

A diversity-only strategy: k = budget clusters over the unlabeled pool, and from each
cluster the member closest to its centre, so the batch covers the pool's modes.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from signal_al.neighbors.validation import l2_normalize
from signal_al.strategies.base import PoolView, QueryStrategy, as_rng, sklearn_seed, top_indices

__all__ = ["BertKMeans"]


class BertKMeans(QueryStrategy):
    """k-means (k = budget) on normalised unlabeled embeddings; one item per centre."""

    name = "bertkm"

    def __init__(self, n_init: int = 1, max_iter: int = 300) -> None:
        self.n_init = n_init
        self.max_iter = max_iter

    def _cluster(self, pool: PoolView, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(cluster label, closeness = -distance to own centre) per unlabeled item."""
        x = l2_normalize("embeddings", pool.require_embeddings(self.name)[pool.unlabeled])
        if budget == 0 or budget >= len(x):  # every item is its own cluster
            return np.arange(len(x)), np.zeros(len(x))
        km = KMeans(n_clusters=budget, n_init=self.n_init, max_iter=self.max_iter, random_state=sklearn_seed(rng))
        labels = km.fit_predict(x)
        dist = np.linalg.norm(x.astype(np.float64) - km.cluster_centers_[labels], axis=1)
        return labels, -dist

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Closeness of each item to its cluster centre (-distance); needs ``budget`` (= k)."""
        if budget is None:
            raise ValueError("budget: bertkm scores depend on the number of clusters (= budget)")
        budget = self.check_budget(pool, budget)
        return self._cluster(pool, budget, as_rng(rng))[1]

    def query(self, pool: PoolView, budget: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        budget = self.check_budget(pool, budget)
        rng = as_rng(rng)
        labels, closeness = self._cluster(pool, budget, rng)
        # the closest member of each cluster: sort by (cluster, distance) and keep each group's first
        order = np.lexsort((rng.random(len(labels)), -closeness, labels))
        first = order[np.r_[True, labels[order][1:] != labels[order][:-1]]]
        picked = first[top_indices(closeness[first], budget, rng)]
        if len(picked) < budget:  # k-means found fewer distinct clusters (duplicate points)
            rest = np.setdiff1d(np.arange(len(labels)), picked)
            picked = np.concatenate([picked, rest[top_indices(closeness[rest], budget - len(picked), rng)]])
        return pool.unlabeled[picked]
