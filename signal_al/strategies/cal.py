"""Contrastive Active Learning (CAL, Margatina et al. 2021).

Score = mean KL divergence between an item's prediction and the predictions on its k
nearest *labeled* neighbours, with no distance weighting. Neighbours come from the labeled
set only, as in the paper (small-text's CAL also searches the unlabeled pool; not here).
The default direction is the original code's KL(p_neighbour ‖ p_item).
"""

from __future__ import annotations

import numpy as np

from signal_al.neighbors.divergence import neighbor_kl, safe_log
from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import check_k, check_kl_direction, l2_normalize
from signal_al.strategies.base import PoolView, RankingStrategy

__all__ = ["ContrastiveActiveLearning"]


class ContrastiveActiveLearning(RankingStrategy):
    """Mean KL to the k nearest labeled items' predictions."""

    name = "cal"

    def __init__(self, k: int = 10, kl_direction: str = "reverse", normalize: bool = False) -> None:
        self.k = check_k(k)
        self.kl_direction = check_kl_direction(kl_direction)
        self.normalize = normalize

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        emb = pool.require_embeddings(self.name)
        pool.require_labeled(self.name)
        if self.normalize:
            emb = l2_normalize("embeddings", emb)
        u, lab = pool.unlabeled, pool.labeled
        _, nbr = LabeledIndex(emb[lab]).search(emb[u], self.k)
        p_u, p_l = pool.probs[u], pool.probs[lab]
        return neighbor_kl(p_u, safe_log(p_u), p_l, safe_log(p_l), nbr, self.kl_direction).mean(axis=1)
