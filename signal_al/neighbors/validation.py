"""Input checks shared by the scores and the strategies, and embeddings in the form a kNN search takes.

A wrong array is a user-visible mistake, so each check names the argument and says what
was expected instead of letting numpy or faiss fail somewhere deeper.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_embeddings", "check_k", "check_kl_direction", "check_probs", "l2_normalize", "prepare_embeddings",
           "row_sq_norms", "squared_norms"]

#: Rows of a probability matrix must sum to 1 within this tolerance.
SUM_TOL = 1e-3


def check_probs(name: str, probs: object, *, n_classes: int | None = None) -> np.ndarray:
    """``probs`` as a float64 (n, C) array of distributions, or a ValueError naming ``name``."""
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected a 2-D array (n, n_classes), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if n_classes is not None and arr.shape[1] != n_classes:
        raise ValueError(f"{name}: expected {n_classes} classes (columns), got {arr.shape[1]}")
    if arr.size:
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or inf")
        if arr.min() < 0.0:
            raise ValueError(f"{name}: probabilities must be non-negative (min {arr.min():.3g})")
        sums = arr.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOL)
        if bad.size:
            raise ValueError(
                f"{name}: rows must sum to 1 (row {bad[0]} sums to {sums[bad[0]]:.6g}); pass softmax outputs"
            )
    return arr


def check_embeddings(name: str, emb: object, *, n_rows: int | None = None, dim: int | None = None,
                     rows_of: str = "", convert: bool = True) -> np.ndarray:
    """``emb`` as a C-contiguous float32 (n, D) array (``convert``) after shape checks, or a
    ValueError naming ``name``. NaN/inf are caught by :func:`squared_norms`."""
    arr = np.asarray(emb)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected a 2-D array (n, dim), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name}: has {arr.shape[0]} rows but {rows_of or 'the probabilities'} has {n_rows}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected embedding dimension {dim}, got {arr.shape[1]}")
    return np.ascontiguousarray(arr, dtype=np.float32) if convert else arr


def row_sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared row norms as float64, summed in ``x``'s own precision (4x faster than casting).

    Rows whose float32 sum overflows are recomputed in float64.
    """
    sq = np.einsum("ij,ij->i", x, x).astype(np.float64)
    bad = ~np.isfinite(sq)
    if bad.any():
        rows = x[bad].astype(np.float64)
        sq[bad] = np.einsum("ij,ij->i", rows, rows)
    return sq


def squared_norms(name: str, emb: np.ndarray) -> np.ndarray:
    """Row squared norms in float64; also the cheap NaN/inf check for ``emb``."""
    sq = row_sq_norms(emb)
    if not np.isfinite(sq).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return sq


def l2_normalize(name: str, emb: np.ndarray) -> np.ndarray:
    """Unit-norm copy of ``emb`` (float32); all-zero rows stay zero."""
    norms = np.sqrt(squared_norms(name, emb))
    norms[norms == 0.0] = 1.0
    return (emb / norms[:, None].astype(np.float32)).astype(np.float32, copy=False)


def prepare_embeddings(name: str, emb: object, *, normalize: bool, n_rows: int | None = None,
                       dim: int | None = None, rows_of: str = "") -> np.ndarray:
    """Checked float32 embeddings, L2-normalised when ``normalize`` (the form every kNN search here takes)."""
    arr = check_embeddings(name, emb, n_rows=n_rows, dim=dim, rows_of=rows_of)
    if normalize:
        return l2_normalize(name, arr)
    squared_norms(name, arr)  # NaN/inf check
    return arr


def check_k(k: object) -> int:
    """A positive integer neighbour count."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    return int(k)


def check_kl_direction(direction: object) -> str:
    if direction not in ("forward", "reverse"):
        raise ValueError(f"kl_direction: must be 'forward' or 'reverse', got {direction!r}")
    return str(direction)
