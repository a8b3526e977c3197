"""Random sampling: the baseline every other strategy has to beat."""

from __future__ import annotations

import numpy as np

from signal_al.strategies.base import PoolView, RankingStrategy, as_rng

__all__ = ["RandomSampling"]


class RandomSampling(RankingStrategy):
    """Uniformly random items; the scores are i.i.d. uniform draws, so top-b is a uniform sample."""

    name = "random"

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        return as_rng(rng).random(len(pool.unlabeled))
