"""SIGnAL as a pool strategy: the top-b unlabeled items by :func:`signal_scores`."""

from __future__ import annotations

import numpy as np

from signal_al.rewards.score import signal_scores
from signal_al.strategies.base import PoolView, RankingStrategy

__all__ = ["SignalSampling"]


class SignalSampling(RankingStrategy):
    """Contrastive KL over distance against the k nearest labeled items (see :func:`signal_scores`)."""

    name = "signal"

    def __init__(self, k: int = 10, kl_direction: str = "forward", eps: float = 1e-6, normalize: bool = True,
                 approximate: bool = False) -> None:
        self.k = k
        self.kl_direction = kl_direction
        self.eps = eps
        self.normalize = normalize
        self.approximate = approximate

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        emb = pool.require_embeddings(self.name)
        pool.require_labeled(self.name)
        u, lab = pool.unlabeled, pool.labeled
        return signal_scores(pool.probs[u], emb[u], pool.probs[lab], emb[lab], k=self.k,
                             kl_direction=self.kl_direction, eps=self.eps, normalize=self.normalize,
                             approximate=self.approximate)
