"""The SIGnAL acquisition score: contrastive KL over distance to the nearest labeled items.

This one function is both the selection rule of the ``signal`` strategy and the reward the
generator is trained on, so it must be exactly the formula and never NaN or inf:

    s_i = 1/k · Σ_j KL(P_i ‖ Q_j) / max(d_ij, eps)

over the k nearest *labeled* rows j of unlabeled row i (Euclidean distance between
embeddings, L2-normalised first by default). ``kl_direction="forward"`` takes P = probs_u[i],
Q = probs_l[j] (SIGnAL paper); ``"reverse"`` swaps them (original CAL code).

Beyond the paper, ``relevance`` multiplies s_i by a factor in [0, 1] from item i's mean k-NN
distance compared with real texts' (see :mod:`signal_al.rewards.relevance`); the default
``"none"`` is the formula above, unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from signal_al.core.config_io import field
from signal_al.neighbors.divergence import neighbor_kl, safe_log
from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import (check_embeddings, check_k, check_kl_direction, check_probs,
                                            prepare_embeddings)
from signal_al.rewards.relevance import Relevance, check_relevance, relevance_factors

__all__ = ["ScoreParams", "SignalScores", "score_params", "signal_scores"]

#: Unlabeled rows scored per faiss search call.
DEFAULT_CHUNK_SIZE = 16384


class SignalScores(NamedTuple):
    """Scores with the neighbours they were computed from (``return_neighbors=True``)."""

    scores: np.ndarray
    """(N,) float64 scores."""
    neighbors: np.ndarray
    """(N, k') int64 row indices into the labeled set, nearest first; k' = min(k, L)."""
    distances: np.ndarray
    """(N, k') float64 Euclidean distances (before the ``eps`` floor)."""


@dataclass(frozen=True)
class ScoreParams:
    """The parameters of the SIGnAL score, in one place: the ``signal`` strategy, the text scorer, the
    generator's rewards and :func:`signal_scores` all take one of these (the ``reward`` config section
    is one, :class:`~signal_al.rewards.config.RewardConfig`). A bad value is a ValueError naming it."""

    k: int = field(10, help="Labeled nearest neighbours per scored item.")
    kl_direction: Literal["forward", "reverse"] = field(
        "forward", help="forward: KL(p_x || p_neighbour) (SIGnAL paper); reverse: KL(p_neighbour || p_x) (CAL code)."
    )
    eps: float = field(1e-6, help="Distance floor; keeps the score finite for duplicates.")
    normalize: bool = field(True, help="L2-normalise embeddings before the Euclidean distance.")
    approximate: bool = field(
        False, help="Approximate kNN (about sqrt(L) k-means lists, a few % of them probed) instead of exact; "
        "for labeled sets of tens of thousands and more."
    )
    relevance: Relevance = field(
        "none", help="Gate the score by how real text lies (beyond the paper): none (paper's formula); quantile "
        "(score 0 when the item's mean k-NN distance to the labeled set exceeds the relevance_quantile of the real "
        "unlabeled pool's); typical (also 0 below their 1 - relevance_quantile quantile: catches meta-commentary, "
        "which embeds closer to the labeled set than real text). See results/offdist/.")
    relevance_quantile: float = field(
        0.95, help="relevance: quantile of the real pool's mean k-NN distances past which an item counts as "
        "off-distribution (in [0.5, 1]).")

    def __post_init__(self) -> None:
        check_k(self.k)
        check_kl_direction(self.kl_direction)
        if isinstance(self.eps, bool) or not (isinstance(self.eps, (int, float)) and np.isfinite(self.eps)
                                              and self.eps > 0):
            raise ValueError(f"eps: must be positive (a finite number), got {self.eps!r}")
        check_relevance(self.relevance, self.relevance_quantile)


def score_params(params: ScoreParams | None = None, **overrides: Any) -> ScoreParams:
    """Plain :class:`ScoreParams` from ``params`` (default: the defaults; a ``reward`` section gives its
    score parameters) with ``overrides`` (``k=5``) applied and checked.

    >>> score_params(k=5)
    ScoreParams(k=5, kl_direction='forward', eps=1e-06, normalize=True, approximate=False, relevance='none', \
relevance_quantile=0.95)
    """
    base = {f.name: getattr(params, f.name) for f in dataclasses.fields(ScoreParams)} if params is not None else {}
    return ScoreParams(**{**base, **overrides})


def signal_scores(
    probs_u: np.ndarray,
    emb_u: np.ndarray,
    probs_l: np.ndarray,
    emb_l: np.ndarray | None,
    params: ScoreParams | None = None,
    *,
    return_neighbors: bool = False,
    index: LabeledIndex | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    use_gpu: bool | None = None,
    reference_distances: np.ndarray | None = None,
    **overrides: Any,
) -> np.ndarray | SignalScores:
    """SIGnAL scores of the unlabeled rows against their ``k`` nearest labeled rows.

    Args:
        probs_u: (N, C) predicted class distributions of the unlabeled items.
        emb_u: (N, D) their embeddings (the classifier's pooled representation).
        probs_l: (L, C) the classifier's predictions on the labeled items (not their labels).
        emb_l: (L, D) embeddings of the labeled items (may be ``None`` when ``index`` is given).
        params: the score's parameters (:class:`ScoreParams`: k neighbours, more than L uses all
            labeled rows; the KL direction, ``"forward"`` KL(p_u ‖ p_l) (paper) or ``"reverse"``
            KL(p_l ‖ p_u) (CAL); the distance floor eps; L2 normalisation; an approximate IVF index
            (see :class:`LabeledIndex`) for large labeled sets; ``relevance``, which multiplies each
            score by :func:`~signal_al.rewards.relevance.relevance_factors` of its mean k-NN distance).
        return_neighbors: also return the neighbour indices and distances.
        index: a prebuilt :class:`LabeledIndex` over the (normalised when ``normalize``)
            ``emb_l``, to reuse it across calls; ``approximate`` and ``use_gpu`` are then ignored.
        chunk_size: unlabeled rows per search call (bounds the working memory).
        use_gpu: faiss GPU index; ``None`` uses one when faiss has GPU support and sees a GPU.
        reference_distances: (R,) mean k-NN distances of real texts to the same labeled set with
            the same ``k`` (:func:`~signal_al.rewards.relevance.knn_mean_distances`); required
            unless ``relevance="none"``, ignored then.
        overrides: single parameters over ``params`` (``k=5``).

    Returns:
        (N,) float64 scores, finite and non-negative; with ``return_neighbors`` a
        :class:`SignalScores` tuple ``(scores, neighbors, distances)``.

    Raises:
        ValueError: a shape, dimension, probability row or parameter is invalid (the
            message names the argument).
    """
    params = score_params(params, **overrides)
    k, eps, normalize, relevance = params.k, params.eps, params.normalize, params.relevance
    if relevance != "none" and reference_distances is None:
        raise ValueError(f"reference_distances: relevance={relevance!r} needs the real texts' mean k-NN distances")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size: must be a positive integer, got {chunk_size!r}")
    p_u = check_probs("probs_u", probs_u)
    p_l = check_probs("probs_l", probs_l, n_classes=p_u.shape[1])
    if len(p_l) == 0:
        raise ValueError("probs_l: the labeled set is empty; scores need at least one labeled item")
    # emb_u is converted and normalised chunk by chunk: no full-size copy of the largest input
    e_u = check_embeddings("emb_u", emb_u, n_rows=len(p_u), rows_of="probs_u", convert=False)
    if index is None:
        if emb_l is None:
            raise ValueError("emb_l: required unless a prebuilt index is passed")
        x_l = prepare_embeddings("emb_l", emb_l, normalize=normalize, n_rows=len(p_l), rows_of="probs_l",
                                 dim=e_u.shape[1])
        index = LabeledIndex(x_l, approximate=params.approximate, use_gpu=use_gpu)
    elif len(index) != len(p_l) or index.dim != e_u.shape[1]:
        raise ValueError(
            f"index: built over {len(index)} rows of dimension {index.dim}, but probs_l has {len(p_l)} rows "
            f"and emb_u dimension {e_u.shape[1]}"
        )

    n, kk = len(p_u), min(k, len(p_l))
    scores = np.empty(n, dtype=np.float64)
    if return_neighbors:
        all_idx = np.empty((n, kk), dtype=np.int64)
        all_dist = np.empty((n, kk), dtype=np.float64)
    log_u, log_l = safe_log(p_u), safe_log(p_l)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        x_u = prepare_embeddings("emb_u", e_u[start:stop], normalize=normalize)
        dist, nbr = index.search(x_u, kk, chunk_size=chunk_size)
        kl = neighbor_kl(p_u[start:stop], log_u[start:stop], p_l, log_l, nbr, params.kl_direction)
        scores[start:stop] = (kl / np.maximum(dist, eps)).mean(axis=1)
        if relevance != "none":
            scores[start:stop] *= relevance_factors(dist.mean(axis=1), reference_distances, mode=relevance,
                                                    quantile=params.relevance_quantile)
        if return_neighbors:
            all_idx[start:stop], all_dist[start:stop] = nbr, dist
    if return_neighbors:
        return SignalScores(scores, all_idx, all_dist)
    return scores
