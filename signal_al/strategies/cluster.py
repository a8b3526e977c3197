"""Cluster-AL: k-means into m clusters, then the most uncertain items of each cluster.

Uncertainty alone piles the batch into one confusing region; taking about budget/m
highest-entropy items from each of m k-means clusters spreads it over the pool. Picks go
round-robin over the clusters (each cluster's best, then each cluster's second best, ...),
so clusters get ⌊b/m⌋ or ⌈b/m⌉ items, the remainder going to the clusters whose next item
is most uncertain, and a cluster smaller than its share leaves its slots to the others.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from signal_al.neighbors.validation import l2_normalize
from signal_al.strategies.base import PoolView, QueryStrategy, as_rng, sklearn_seed
from signal_al.strategies.entropy import predictive_entropy

__all__ = ["ClusterEntropy"]


class ClusterEntropy(QueryStrategy):
    """k-means (``n_clusters``) on normalised embeddings, the top-entropy items per cluster."""

    name = "cluster"

    def __init__(self, n_clusters: int = 10, n_init: int = 1, normalize: bool = True) -> None:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
            raise ValueError(f"n_clusters: must be a positive integer, got {n_clusters!r}")
        self.n_clusters = int(n_clusters)
        self.n_init = n_init
        self.normalize = normalize

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Predictive entropy (the within-cluster ranking)."""
        return predictive_entropy(pool.probs[pool.unlabeled])

    def clusters(self, pool: PoolView, rng: np.random.Generator) -> np.ndarray:
        """k-means cluster of each unlabeled item."""
        x = pool.require_embeddings(self.name)[pool.unlabeled]
        if self.normalize:
            x = l2_normalize("embeddings", x)
        m = min(self.n_clusters, len(x))
        if m <= 1:
            return np.zeros(len(x), dtype=np.int64)
        km = KMeans(n_clusters=m, n_init=self.n_init, random_state=sklearn_seed(rng))
        return km.fit_predict(x).astype(np.int64)

    def query(self, pool: PoolView, budget: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        budget = self.check_budget(pool, budget)
        rng = as_rng(rng)
        if budget == 0:
            return pool.unlabeled[:0]
        labels = self.clusters(pool, rng)
        ent = self.score(pool, budget, rng)
        tie = rng.random(len(ent))
        # rank of each item inside its cluster by entropy (0 = most uncertain)
        order = np.lexsort((tie, -ent, labels))
        starts = np.r_[0, np.flatnonzero(labels[order][1:] != labels[order][:-1]) + 1]
        rank = np.empty(len(ent), dtype=np.int64)
        rank[order] = np.arange(len(ent)) - np.repeat(starts, np.diff(np.r_[starts, len(ent)]))
        picked = np.lexsort((tie, -ent, rank))[:budget]  # round-robin over clusters
        return pool.unlabeled[picked]
