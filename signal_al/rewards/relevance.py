"""Relevance: how far a scored item lies from the labeled set, compared with real text.

The SIGnAL score divides a KL term by a distance. With L2-normalised embeddings the distance
varies by at most ~2x between items while the KL term varies by orders of magnitude, so text
the classifier finds strange (meta-commentary about the prompt, another domain, word salad)
can outscore real-looking text, and a generator trained on the score learns to write it
(``scripts/measure_offdist.py``). The remedy here is a calibration of the distance against
the distances of *real* texts: the real unlabeled pool's own mean k-NN distances to the labeled
set (the ``reference``) say how far a real text usually lies, and a candidate farther than the
``quantile`` of them is treated as off-distribution. Everything here is a pure function of
arrays, so the strategy, the scorer of texts and a benchmark share the exact same numbers.
"""

from __future__ import annotations

from typing import Literal, Sequence, get_args

import numpy as np

from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import check_embeddings, l2_normalize, squared_norms

__all__ = [
    "RELEVANCE_MODES",
    "Relevance",
    "check_relevance",
    "distance_bounds",
    "knn_mean_distances",
    "offdist_flags",
    "relevance_factors",
    "relevance_reference",
]

Relevance = Literal["none", "quantile", "typical"]
#: The values of ``reward.relevance`` / ``signal_scores(relevance=...)``.
RELEVANCE_MODES: tuple[str, ...] = get_args(Relevance)


def check_relevance(mode: object, quantile: object) -> tuple[str, float]:
    """``(mode, quantile)`` validated, or a ValueError naming the argument."""
    if mode not in RELEVANCE_MODES:
        raise ValueError(f"relevance: must be one of {', '.join(map(repr, RELEVANCE_MODES))}, got {mode!r}")
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.5 <= quantile <= 1.0:
        raise ValueError(f"relevance_quantile: must be in [0.5, 1], got {quantile!r}")
    return str(mode), float(quantile)


def _distances(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of mean k-NN distances, got shape {arr.shape}")
    if arr.size and (not np.isfinite(arr).all() or arr.min() < 0):
        raise ValueError(f"{name}: distances must be finite and non-negative")
    return arr


def distance_bounds(reference: np.ndarray, quantile: float = 0.95, *, two_sided: bool = False) -> tuple[float, float]:
    """The range of mean k-NN distances counted as real-looking: up to the ``quantile`` of the
    reference distances and, ``two_sided``, from their ``1 - quantile`` quantile (numpy's default
    linear interpolation); else from 0.

    >>> distance_bounds(np.array([0.2, 0.4, 0.6, 0.8, 1.0]), 0.75, two_sided=True)
    (0.4, 0.8)
    """
    ref = _distances("reference_distances", reference)
    if ref.size == 0:
        raise ValueError("reference_distances: empty; relevance needs the distances of at least one real text")
    _, quantile = check_relevance("none", quantile)
    low = float(np.quantile(ref, 1.0 - quantile)) if two_sided else 0.0
    return low, float(np.quantile(ref, quantile))


def offdist_flags(distances: np.ndarray, reference: np.ndarray, *, quantile: float = 0.95,
                  two_sided: bool = False) -> np.ndarray:
    """True where an item's mean k-NN distance to the labeled set lies beyond the ``quantile`` of
    the real texts' (``reference``) or, ``two_sided``, also below their ``1 - quantile`` quantile.

    By construction about ``1 - quantile`` of real texts are flagged (twice that two-sided), so a
    benchmark can report how much more often generated text is. Two-sided flags also catch the
    text that lies *closer* to the labeled set than real text does: templated meta-commentary
    embeds near the centre of the pool (a hub), closer to everything than real reviews are.

    >>> ref = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    >>> offdist_flags(np.array([0.1, 0.7, 0.9]), ref, quantile=0.5)
    array([False,  True,  True])
    >>> offdist_flags(np.array([0.1, 0.5, 0.9]), ref, quantile=0.75, two_sided=True)
    array([ True, False,  True])
    """
    d = _distances("distances", distances)
    low, high = distance_bounds(reference, quantile, two_sided=two_sided)
    return (d > high) | (d < low)


def relevance_factors(distances: np.ndarray, reference: np.ndarray | None, *, mode: str = "none",
                      quantile: float = 0.95) -> np.ndarray:
    """The factor (0 or 1) each score is multiplied by, from its mean k-NN distance ``distances``.

    - ``none``: 1 (the paper's formula).
    - ``quantile``: 0 beyond the ``quantile`` of the reference distances (one-sided
      :func:`offdist_flags`): text farther from the labeled set than nearly all real text.
    - ``typical``: 0 outside the central ``[1 - quantile, quantile]`` range (two-sided flags):
      also text implausibly close to the labeled set. At ``quantile=0.9`` the only setting measured
      under which no kind of off-distribution text outscores real text on rt-movies; on
      vader-sources it gates other-domain text but not meta-commentary, which lies at real
      distances there (``results/offdist/``).

    A gate rather than a smooth decay: the KL term of off-distribution text is a few times that
    of real text, so a decay would have to be as steep as a gate to make up for it (a decay
    over one standard deviation of the reference did not, ``scripts/measure_offdist.py``).

    >>> ref = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    >>> relevance_factors(np.array([0.3, 0.7, 0.9]), ref, mode="quantile", quantile=0.75)
    array([1., 1., 0.])
    >>> relevance_factors(np.array([0.3, 0.7, 0.9]), ref, mode="typical", quantile=0.75)
    array([0., 1., 0.])
    """
    mode, quantile = check_relevance(mode, quantile)
    d = _distances("distances", distances)
    if mode == "none":
        return np.ones(len(d), dtype=np.float64)
    if reference is None:
        raise ValueError(f"reference_distances: relevance={mode!r} needs the real texts' mean k-NN distances")
    flags = offdist_flags(d, reference, quantile=quantile, two_sided=mode == "typical")
    return (~flags).astype(np.float64)


def relevance_reference(real: Sequence[bool], labeled: Sequence[bool]) -> tuple[np.ndarray, bool]:
    """Which rows calibrate ``relevance``, for a pool given as two masks (``real``: human-written rows,
    ``labeled``): the real unlabeled rows, whose mean k-NN distances to the labeled set say how far real
    text lies. When every real row is labeled (a small pool late in a run) the real labeled rows stand
    in, each to be measured without itself (the ``True`` returned:
    :func:`knn_mean_distances` ``exclude_self``).

    The one rule for the ``signal`` strategy, the text scorer of a run (the held-out comparison,
    ``SignalScorer.from_run``) and generator evaluation.

    >>> relevance_reference([True, True, False, True], [True, False, False, False])
    (array([1, 3]), False)
    >>> relevance_reference([True, False], [True, False])
    (array([0]), True)
    """
    real, labeled = np.asarray(real, dtype=bool), np.asarray(labeled, dtype=bool)
    if real.shape != labeled.shape or real.ndim != 1:
        raise ValueError(f"labeled: expected {real.shape} booleans like real, got shape {labeled.shape}")
    rows = np.flatnonzero(real & ~labeled)
    if rows.size:
        return rows, False
    return np.flatnonzero(real & labeled), True


def knn_mean_distances(emb: np.ndarray, emb_l: np.ndarray | None = None, *, k: int = 10, normalize: bool = True,
                       index: LabeledIndex | None = None, exclude_self: bool = False) -> np.ndarray:
    """(n,) mean Euclidean distance of each row of ``emb`` to its ``k`` nearest rows of ``emb_l``
    (or of a prebuilt ``index``), normalised like :func:`signal_scores` does; the reference
    distances of the real texts for :func:`relevance_factors`.

    ``exclude_self``: the rows of ``emb`` are themselves rows of the labeled set (the fallback of
    :func:`relevance_reference`); each nearest neighbour (itself, at distance 0) is left out, and at
    most ``L - 1`` others are averaged.
    """
    x = check_embeddings("emb", emb)
    if normalize:
        x = l2_normalize("emb", x)
    else:
        squared_norms("emb", x)
    if index is None:
        if emb_l is None:
            raise ValueError("emb_l: required unless a prebuilt index is passed")
        xl = check_embeddings("emb_l", emb_l, dim=x.shape[1])
        xl = l2_normalize("emb_l", xl) if normalize else xl
        index = LabeledIndex(xl, use_gpu=False)
    if len(x) == 0:
        return np.zeros(0, dtype=np.float64)
    if not exclude_self:
        dist, _ = index.search(x, k)
        return dist.mean(axis=1)
    if len(index) < 2:
        raise ValueError("emb: a labeled row is measured against the other labeled rows, and there is only one")
    dist, _ = index.search(x, min(k, len(index) - 1) + 1)
    return dist[:, 1:].mean(axis=1)
