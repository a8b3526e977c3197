"""kNN label disagreement (query by committee over labeled neighbours).

The K nearest labeled items act as a committee voting with their true labels; an item
whose neighbourhood disagrees is informative. Two classes: the standard deviation of the
neighbours' 0/1 labels; more classes: the vote entropy.
"""

from __future__ import annotations

import numpy as np

from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import check_k, l2_normalize
from signal_al.strategies.base import PoolView, RankingStrategy

__all__ = ["KNNDisagreement"]


class KNNDisagreement(RankingStrategy):
    """Label disagreement among the K nearest labeled items."""

    name = "qbc"

    def __init__(self, k: int = 10, normalize: bool = False) -> None:
        self.k = check_k(k)
        self.normalize = normalize

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        emb = pool.require_embeddings(self.name)
        pool.require_labeled(self.name)
        if pool.labels is None:
            raise ValueError(f"labels: the {self.name!r} strategy needs the labels of the labeled items")
        if self.normalize:
            emb = l2_normalize("embeddings", emb)
        _, nbr = LabeledIndex(emb[pool.labeled]).search(emb[pool.unlabeled], self.k)
        votes = pool.labels[pool.labeled][nbr]  # (n, K)
        if pool.n_classes == 2:
            return votes.astype(np.float64).std(axis=1)
        counts = np.stack([(votes == c).sum(axis=1) for c in range(pool.n_classes)], axis=1)
        share = counts / votes.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(share > 0, share * np.log(share), 0.0)
        return np.maximum(-terms.sum(axis=1), 0.0)
