"""SIGnAL as a pool strategy: the top-b unlabeled items by :func:`signal_scores`.

The strategy's scores are also the loop's D_RL rewards of the round's generated candidates,
so they are computed by the public :func:`signal_scores` with the strategy's
:class:`~signal_al.rewards.score.ScoreParams` (the ``reward`` section's): a user calling
``signal_scores`` on the same arrays with the same parameters gets the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import prepare_embeddings
from signal_al.rewards.relevance import knn_mean_distances, relevance_reference
from signal_al.rewards.score import ScoreParams, score_params, signal_scores
from signal_al.strategies.base import PoolView, RankingStrategy

__all__ = ["SignalSampling", "reference_distances"]


class SignalSampling(RankingStrategy):
    """Contrastive KL over distance against the k nearest labeled items (see :func:`signal_scores`).

    ``params`` (default :class:`ScoreParams`; ``overrides`` such as ``k=5`` replace single ones).
    ``relevance`` (beyond the paper) calibrates each score against the real unlabeled rows' mean
    k-NN distances (``PoolView.real``; all rows when it is ``None``), see :func:`reference_distances`.
    """

    name = "signal"
    generates = True

    def __init__(self, params: ScoreParams | None = None, **overrides: Any) -> None:
        self.params = score_params(params, **overrides)

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        emb = pool.require_embeddings(self.name)
        pool.require_labeled(self.name)
        u, lab, params = pool.unlabeled, pool.labeled, self.params
        if params.relevance == "none":
            return signal_scores(pool.probs[u], emb[u], pool.probs[lab], emb[lab], params)
        # one index serves the reference distances and the scores
        index = LabeledIndex(prepare_embeddings("embeddings", emb[lab], normalize=params.normalize),
                             approximate=params.approximate)
        reference = reference_distances(pool, k=params.k, normalize=params.normalize, index=index)
        return signal_scores(pool.probs[u], emb[u], pool.probs[lab], None, params, index=index,
                             reference_distances=reference)


def reference_distances(view: PoolView, *, k: int = 10, normalize: bool = True,
                        index: LabeledIndex | None = None) -> np.ndarray:
    """Mean k-NN distances to the labeled rows of the rows :func:`relevance_reference` names: the real
    unlabeled rows, or, when every real row is labeled (a small pool late in a run), the real labeled
    rows, each measured against the other labeled rows. ``index`` is a prebuilt :class:`LabeledIndex`
    over ``view.labeled``'s embeddings.
    """
    emb = view.require_embeddings("signal")
    view.require_labeled("signal")
    if index is None:
        index = LabeledIndex(prepare_embeddings("embeddings", emb[view.labeled], normalize=normalize))
    candidates = np.concatenate([view.unlabeled, view.labeled])
    is_labeled = np.arange(len(candidates)) >= len(view.unlabeled)
    chosen, self_included = relevance_reference(view.real_mask()[candidates], is_labeled)
    if chosen.size == 0 or (self_included and len(view.labeled) < 2):
        raise ValueError("real: relevance needs a real unlabeled row, or a real labeled row and another labeled "
                         "row to measure it against")
    return knn_mean_distances(emb[candidates[chosen]], k=k, normalize=normalize, index=index,
                              exclude_self=self_included)
