"""The interface every selection strategy implements.

A strategy is a pure function of the classifier's outputs over the pool, the
labeled/unlabeled split, a budget and a seeded RNG (no I/O, no model calls), in the spirit
of small-text's query strategies: ``query`` returns the pool indices to annotate and
``score`` returns one number per unlabeled item (higher = more wanted), which is what a
reward or a diagnostic plot needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from signal_al.rewards.validation import check_embeddings, check_probs, squared_norms

__all__ = ["PoolView", "QueryStrategy", "RankingStrategy", "as_rng", "top_indices", "sklearn_seed"]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or ``None``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sklearn_seed(rng: np.random.Generator) -> int:
    """An int seed for sklearn estimators, drawn from ``rng`` so runs stay reproducible."""
    return int(rng.integers(0, 2**31 - 1))


def top_indices(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``n`` highest scores, best first; exact ties broken by ``rng``."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise RuntimeError("strategy produced NaN or inf scores (a bug, please report it)")
    order = np.lexsort((rng.random(len(scores)), -scores))
    return order[:n]


def _index_array(name: str, values: object, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected a 1-D array of integer pool indices, got {arr.dtype} shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"{name}: indices must lie in [0, {n}), got range [{arr.min()}, {arr.max()}]")
    if len(np.unique(arr)) != len(arr):
        raise ValueError(f"{name}: contains repeated indices")
    return arr.astype(np.int64, copy=False)


@dataclass(frozen=True)
class PoolView:
    """What a strategy sees: the classifier's outputs on the whole pool and the split.

    Args:
        probs: (n, C) predicted class distributions for every pool item.
        labeled: pool indices of the labeled items.
        unlabeled: pool indices of the candidates; scores and selections refer to these.
        embeddings: (n, D) pooled embeddings (needed by bertkm, badge, cal, coreset,
            cluster, qbc and signal).
        labels: (n,) integer labels; only the entries at ``labeled`` are read (qbc).
    """

    probs: np.ndarray
    labeled: np.ndarray
    unlabeled: np.ndarray
    embeddings: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        probs = check_probs("probs", self.probs)
        n = len(probs)
        labeled = _index_array("labeled", self.labeled, n)
        unlabeled = _index_array("unlabeled", self.unlabeled, n)
        if np.intersect1d(labeled, unlabeled).size:
            raise ValueError("unlabeled: overlaps the labeled indices")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "labeled", labeled)
        object.__setattr__(self, "unlabeled", unlabeled)
        if self.embeddings is not None:
            emb = check_embeddings("embeddings", self.embeddings, n_rows=n, rows_of="probs")
            squared_norms("embeddings", emb)
            object.__setattr__(self, "embeddings", emb)
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels: expected {n} integer labels, got {labels.dtype} shape {labels.shape}")
            lab = labels[labeled]
            if lab.size and (lab.min() < 0 or lab.max() >= probs.shape[1]):
                raise ValueError(f"labels: labeled items must have labels in [0, {probs.shape[1]})")
            object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    @property
    def n_classes(self) -> int:
        return self.probs.shape[1]

    def require_embeddings(self, strategy: str) -> np.ndarray:
        if self.embeddings is None:
            raise ValueError(f"embeddings: the {strategy!r} strategy needs the pool embeddings")
        return self.embeddings

    def require_labeled(self, strategy: str) -> None:
        if self.labeled.size == 0:
            raise ValueError(f"labeled: the {strategy!r} strategy needs at least one labeled item")


class QueryStrategy(ABC):
    """One selection rule; ``name`` is what configs use (``active_learning.strategy``)."""

    name: ClassVar[str]

    @abstractmethod
    def query(self, pool: PoolView, budget: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Pool indices (a subset of ``pool.unlabeled``) of the ``budget`` items to annotate."""

    @abstractmethod
    def score(
        self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """(len(pool.unlabeled),) finite per-item scores, aligned with ``pool.unlabeled``.

        ``budget`` matters only for the batch strategies whose scores depend on it (bertkm).
        """

    def check_budget(self, pool: PoolView, budget: int) -> int:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
            raise ValueError(f"budget: must be a non-negative integer, got {budget!r}")
        if budget > len(pool.unlabeled):
            raise ValueError(f"budget: {budget} exceeds the {len(pool.unlabeled)} unlabeled items")
        return int(budget)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class RankingStrategy(QueryStrategy):
    """A strategy that selects the top-``budget`` items by its score (ties broken by the RNG)."""

    def query(self, pool: PoolView, budget: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        budget = self.check_budget(pool, budget)
        rng = as_rng(rng)
        scores = self.score(pool, budget, rng)
        return pool.unlabeled[top_indices(scores, budget, rng)]
