"""SIGnAL as a pool strategy: the top-b unlabeled items by :func:`signal_scores`.

The strategy's scores are also the loop's D_RL rewards of the round's generated candidates,
so they are computed by the public :func:`signal_scores` with the keyword arguments
:func:`~signal_al.rewards.config.score_kwargs` gives for the ``reward`` section: a user calling
``signal_scores`` on the same arrays gets the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from signal_al.neighbors.knn import LabeledIndex
from signal_al.rewards.relevance import check_relevance, knn_mean_distances
from signal_al.rewards.score import prepare_embeddings, signal_scores
from signal_al.strategies.base import PoolView, RankingStrategy

__all__ = ["SignalSampling", "reference_distances"]


class SignalSampling(RankingStrategy):
    """Contrastive KL over distance against the k nearest labeled items (see :func:`signal_scores`).

    ``relevance`` (beyond the paper) calibrates each score against the real unlabeled rows'
    mean k-NN distances (``PoolView.real``; all rows when it is ``None``), see
    :func:`reference_distances`.
    """

    name = "signal"

    def __init__(self, k: int = 10, kl_direction: str = "forward", eps: float = 1e-6, normalize: bool = True,
                 approximate: bool = False, relevance: str = "none", relevance_quantile: float = 0.95) -> None:
        check_relevance(relevance, relevance_quantile)
        self.k = k
        self.kl_direction = kl_direction
        self.eps = eps
        self.normalize = normalize
        self.approximate = approximate
        self.relevance = relevance
        self.relevance_quantile = relevance_quantile

    def score_kwargs(self) -> dict[str, Any]:
        """The :func:`signal_scores` keyword arguments this strategy scores with."""
        return {"k": self.k, "kl_direction": self.kl_direction, "eps": self.eps, "normalize": self.normalize,
                "approximate": self.approximate, "relevance": self.relevance,
                "relevance_quantile": self.relevance_quantile}

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        emb = pool.require_embeddings(self.name)
        pool.require_labeled(self.name)
        u, lab = pool.unlabeled, pool.labeled
        if self.relevance == "none":
            return signal_scores(pool.probs[u], emb[u], pool.probs[lab], emb[lab], **self.score_kwargs())
        # one index serves the reference distances and the scores
        index = LabeledIndex(prepare_embeddings("embeddings", emb[lab], normalize=self.normalize),
                             approximate=self.approximate)
        reference = reference_distances(pool, k=self.k, normalize=self.normalize, index=index)
        return signal_scores(pool.probs[u], emb[u], pool.probs[lab], None, index=index, **self.score_kwargs(),
                             reference_distances=reference)


def reference_distances(view: PoolView, *, k: int = 10, normalize: bool = True,
                        index: LabeledIndex | None = None) -> np.ndarray:
    """Mean k-NN distances to the labeled rows of the real unlabeled rows (the relevance reference).

    When every real row is labeled (a small pool late in a run), the real labeled rows stand in,
    each measured against the other labeled rows (its own row, the nearest at distance 0, left
    out). ``index`` is a prebuilt :class:`LabeledIndex` over ``view.labeled``'s embeddings.
    """
    emb = view.require_embeddings("signal")
    view.require_labeled("signal")
    if index is None:
        index = LabeledIndex(prepare_embeddings("embeddings", emb[view.labeled], normalize=normalize))
    real = view.real_mask()
    real_unlabeled = view.unlabeled[real[view.unlabeled]]
    if real_unlabeled.size:
        return knn_mean_distances(emb[real_unlabeled], k=k, normalize=normalize, index=index)
    real_labeled = view.labeled[real[view.labeled]]
    if len(view.labeled) < 2 or real_labeled.size == 0:
        raise ValueError("real: relevance needs a real unlabeled row, or a real labeled row and another labeled "
                         "row to measure it against")
    x = prepare_embeddings("embeddings", emb[real_labeled], normalize=normalize)
    dist, _ = index.search(x, min(k, len(view.labeled) - 1) + 1)
    return dist[:, 1:].mean(axis=1)
