"""The interface every selection strategy implements.

A strategy is a pure function of the classifier's outputs over the pool, the
labeled/unlabeled split, a budget and a seeded RNG (no I/O, no model calls), in the spirit
of small-text's query strategies: ``query`` returns the pool indices to annotate and
``score`` returns one number per unlabeled item (higher = more wanted), which is what a
reward or a diagnostic plot needs. ``select`` does both at once: it returns the chosen indices
with the scores they were chosen by, so a caller that needs both (the loop: the selection and
the D_RL rewards of the round's candidates) scores once and cannot pick from other numbers
than it records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from signal_al.neighbors.validation import check_embeddings, check_probs, squared_norms
from signal_al.strategies.synthetic_share import split_top_indices, top_indices

__all__ = ["PoolView", "QueryStrategy", "RankingStrategy", "Selection", "as_rng", "top_indices", "sklearn_seed"]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or ``None``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sklearn_seed(rng: np.random.Generator) -> int:
    """An int seed for sklearn estimators, drawn from ``rng`` so runs stay reproducible."""
    return int(rng.integers(0, 2**31 - 1))


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
        real: (n,) booleans, True for real (human-written) pool rows, False for generated
            ones; ``None`` means every row is real. The real unlabeled rows are the reference
            of ``reward.relevance`` (how far from the labeled set real text lies).
    """

    probs: np.ndarray
    labeled: np.ndarray
    unlabeled: np.ndarray
    embeddings: np.ndarray | None = None
    labels: np.ndarray | None = None
    real: np.ndarray | None = None

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
        if self.real is not None:
            real = np.asarray(self.real)
            if real.shape != (n,) or real.dtype != np.bool_:
                raise ValueError(f"real: expected {n} booleans (one per pool row), got {real.dtype} shape {real.shape}")
            object.__setattr__(self, "real", real)

    def real_mask(self) -> np.ndarray:
        """(n,) booleans: ``real``, or all True when it is ``None``."""
        return np.ones(len(self.probs), dtype=bool) if self.real is None else self.real

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


class Selection(NamedTuple):
    """What :meth:`QueryStrategy.select` returns."""

    indices: np.ndarray
    """Pool positions chosen (a subset of ``view.unlabeled``), best first."""
    scores: np.ndarray | None
    """One score per ``view.unlabeled`` row, the numbers the choice was made by; ``None`` for
    strategies that do not rank by a score (batch strategies such as badge or coreset)."""


class QueryStrategy(ABC):
    """One selection rule; ``name`` is what configs use (``active_learning.strategy``)."""

    name: ClassVar[str]
    generates: ClassVar[bool] = False
    """Whether runs of this strategy need candidates from the generator every round (SIGnAL)."""

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

    def select(self, view: PoolView, budget: int, rng: np.random.Generator | int | None = None, *,
               synthetic: np.ndarray | None = None, synthetic_share: float | None = None) -> Selection:
        """The ``budget`` pool positions to annotate and, for ranking strategies, the scores behind them.

        This base version is :meth:`query` with ``scores=None``. ``synthetic_share`` (reserve that
        share of the budget for synthetic items) needs a score to rank each side by, so only
        :class:`RankingStrategy` accepts it.
        """
        if synthetic_share is not None:
            raise ValueError(f"synthetic_share: the {self.name!r} strategy does not rank items by a score; "
                             "a synthetic share needs a ranking strategy (e.g. signal)")
        return Selection(self.query(view, budget, rng), None)

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
        return self.select(pool, budget, rng).indices

    def select(self, view: PoolView, budget: int, rng: np.random.Generator | int | None = None, *,
               synthetic: np.ndarray | None = None, synthetic_share: float | None = None) -> Selection:
        """Score the unlabeled rows once and take the top ``budget``.

        With ``synthetic_share`` the budget is split between synthetic and real items
        (:func:`~signal_al.strategies.synthetic_share.split_top_indices`); ``synthetic`` is the
        boolean mask aligned with ``view.unlabeled`` (default: the rows ``view.real`` marks False).
        """
        budget = self.check_budget(view, budget)
        rng = as_rng(rng)
        scores = self.score(view, budget, rng)
        if synthetic_share is None:
            positions = top_indices(scores, budget, rng)
        else:

            if not (isinstance(synthetic_share, (int, float)) and 0.0 <= synthetic_share <= 1.0):
                raise ValueError(f"synthetic_share: must be a number in [0, 1], got {synthetic_share!r}")
            if synthetic is None:
                if view.real is None:
                    raise ValueError("synthetic: a synthetic share needs the synthetic mask (or PoolView.real)")
                synthetic = ~view.real[view.unlabeled]
            synthetic = np.asarray(synthetic)
            if synthetic.shape != view.unlabeled.shape or synthetic.dtype != np.bool_:
                raise ValueError(f"synthetic: expected {len(view.unlabeled)} booleans aligned with view.unlabeled, "
                                 f"got {synthetic.dtype} shape {synthetic.shape}")
            positions = split_top_indices(scores, synthetic, budget, float(synthetic_share), rng)
        return Selection(view.unlabeled[positions], scores)
