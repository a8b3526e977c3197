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

from typing import NamedTuple

import numpy as np

from signal_al.neighbors.divergence import neighbor_kl, safe_log
from signal_al.neighbors.knn import LabeledIndex
from signal_al.rewards.relevance import check_relevance, relevance_factors
from signal_al.neighbors.validation import (
    check_embeddings,
    check_k,
    check_kl_direction,
    check_probs,
    l2_normalize,
    squared_norms,
)

__all__ = ["SignalScores", "signal_scores", "prepare_embeddings"]

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


def prepare_embeddings(name: str, emb: object, *, normalize: bool, n_rows: int | None = None,
                       dim: int | None = None, rows_of: str = "") -> np.ndarray:
    """Checked float32 embeddings, L2-normalised when ``normalize``; shared with cached callers."""
    arr = check_embeddings(name, emb, n_rows=n_rows, dim=dim, rows_of=rows_of)
    if normalize:
        return l2_normalize(name, arr)
    squared_norms(name, arr)  # NaN/inf check
    return arr


def signal_scores(
    probs_u: np.ndarray,
    emb_u: np.ndarray,
    probs_l: np.ndarray,
    emb_l: np.ndarray | None,
    *,
    k: int = 10,
    kl_direction: str = "forward",
    eps: float = 1e-6,
    normalize: bool = True,
    return_neighbors: bool = False,
    approximate: bool = False,
    index: LabeledIndex | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    use_gpu: bool | None = None,
    relevance: str = "none",
    relevance_quantile: float = 0.95,
    reference_distances: np.ndarray | None = None,
) -> np.ndarray | SignalScores:
    """SIGnAL scores of the unlabeled rows against their ``k`` nearest labeled rows.

    Args:
        probs_u: (N, C) predicted class distributions of the unlabeled items.
        emb_u: (N, D) their embeddings (the classifier's pooled representation).
        probs_l: (L, C) the classifier's predictions on the labeled items (not their labels).
        emb_l: (L, D) embeddings of the labeled items (may be ``None`` when ``index`` is given).
        k: neighbours per item; more than L uses all labeled rows.
        kl_direction: ``"forward"`` KL(p_u ‖ p_l) (paper) or ``"reverse"`` KL(p_l ‖ p_u) (CAL).
        eps: floor of the distance in the denominator; keeps duplicates finite.
        normalize: L2-normalise both embedding sets before measuring distances.
        return_neighbors: also return the neighbour indices and distances.
        approximate: use an IVF index (see :class:`LabeledIndex`) instead of the exact one;
            for large labeled sets.
        index: a prebuilt :class:`LabeledIndex` over the (normalised when ``normalize``)
            ``emb_l``, to reuse it across calls; ``approximate`` and ``use_gpu`` are then ignored.
        chunk_size: unlabeled rows per search call (bounds the working memory).
        use_gpu: faiss GPU index; ``None`` uses one when faiss has GPU support and sees a GPU.
        relevance: ``"none"`` (paper), ``"quantile"`` or ``"typical"``: multiply each score by
            :func:`~signal_al.rewards.relevance.relevance_factors` of its mean k-NN distance.
        relevance_quantile: the quantile of ``reference_distances`` beyond which an item counts
            as off-distribution.
        reference_distances: (R,) mean k-NN distances of real texts to the same labeled set with
            the same ``k`` (:func:`~signal_al.rewards.relevance.knn_mean_distances`); required
            unless ``relevance="none"``, ignored then.

    Returns:
        (N,) float64 scores, finite and non-negative; with ``return_neighbors`` a
        :class:`SignalScores` tuple ``(scores, neighbors, distances)``.

    Raises:
        ValueError: a shape, dimension, probability row or parameter is invalid (the
            message names the argument).
    """
    k = check_k(k)
    kl_direction = check_kl_direction(kl_direction)
    relevance, relevance_quantile = check_relevance(relevance, relevance_quantile)
    if relevance != "none" and reference_distances is None:
        raise ValueError(f"reference_distances: relevance={relevance!r} needs the real texts' mean k-NN distances")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: must be a positive finite number, got {eps!r}")
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
        index = LabeledIndex(x_l, approximate=approximate, use_gpu=use_gpu)
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
        kl = neighbor_kl(p_u[start:stop], log_u[start:stop], p_l, log_l, nbr, kl_direction)
        scores[start:stop] = (kl / np.maximum(dist, eps)).mean(axis=1)
        if relevance != "none":
            scores[start:stop] *= relevance_factors(dist.mean(axis=1), reference_distances, mode=relevance,
                                                    quantile=relevance_quantile)
        if return_neighbors:
            all_idx[start:stop], all_dist[start:stop] = nbr, dist
    if return_neighbors:
        return SignalScores(scores, all_idx, all_dist)
    return scores
