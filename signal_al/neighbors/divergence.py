"""KL divergence between an item's prediction and its neighbours' predictions.

Shared by the SIGnAL score and CAL. Probabilities are floored at :data:`PROB_FLOOR` inside
the logarithm only, so a zero probability on the left contributes exactly 0 (0·log 0 = 0)
and a zero on the right costs at most ``-log(PROB_FLOOR)`` ≈ 27.6 nats instead of inf.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PROB_FLOOR", "safe_log", "neighbor_kl"]

#: Probabilities are clipped to at least this value before the log.
PROB_FLOOR = 1e-12


def safe_log(probs: np.ndarray) -> np.ndarray:
    """``log(max(p, PROB_FLOOR))`` in float64."""
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR))


def neighbor_kl(
    probs_u: np.ndarray,
    log_u: np.ndarray,
    probs_l: np.ndarray,
    log_l: np.ndarray,
    neighbors: np.ndarray,
    direction: str = "forward",
) -> np.ndarray:
    """(n, k) KL divergences between row i of ``probs_u`` and its neighbours ``probs_l[neighbors[i]]``.

    ``direction="forward"`` is KL(p_u ‖ p_l) (SIGnAL paper); ``"reverse"`` is KL(p_l ‖ p_u)
    (original CAL code). ``log_u``/``log_l`` are :func:`safe_log` of the probabilities,
    passed in so that callers scoring in chunks compute them once.
    """
    p = probs_u[:, None, :]
    lp = log_u[:, None, :]
    q = probs_l[neighbors]
    lq = log_l[neighbors]
    if direction == "forward":
        kl = np.einsum("nkc,nkc->nk", np.broadcast_to(p, q.shape), lp - lq)
    elif direction == "reverse":
        kl = np.einsum("nkc,nkc->nk", q, lq - lp)
    else:
        raise ValueError(f"kl_direction: must be 'forward' or 'reverse', got {direction!r}")
    np.maximum(kl, 0.0, out=kl)  # rounding can leave -1e-17 where the two are identical
    return kl
