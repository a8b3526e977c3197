"""Seeded splits: train/test for corpora without a test split, and the low-resource real pool."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from signal_al.core.errors import DataError


def _can_stratify(labels: np.ndarray, n_small: int) -> bool:
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.min() >= 2 and n_small >= len(counts)


def split_train_test(
    labels: np.ndarray, test_fraction: float, *, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices; stratified by label when possible."""
    indices = np.arange(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    if n_test < 1 or n_test >= len(labels):
        raise DataError(f"data.test_fraction={test_fraction} leaves no train or no test rows out of {len(labels)}")
    strat = labels if stratify and _can_stratify(labels, min(n_test, len(labels) - n_test)) else None
    train, test = train_test_split(indices, test_size=n_test, random_state=seed, stratify=strat)
    return np.sort(train), np.sort(test)


def pool_size_for(n_train: int, *, fraction: float | None, size: int | None) -> int:
    """Number of real-pool rows: ``size`` when given, else ``round(fraction * n_train)`` (at least 1)."""
    if size is not None:
        if size > n_train:
            raise DataError(f"data.pool_size={size} exceeds the {n_train} rows of the train split")
        return size
    if fraction is None:
        return n_train
    return max(1, int(round(fraction * n_train)))


def subsample_pool(labels: np.ndarray, n_pool: int, *, seed: int, stratify: bool = True) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``n_pool`` rows (label-stratified when possible)."""
    n = len(labels)
    if not 0 < n_pool <= n:
        raise DataError(f"pool size {n_pool} must be between 1 and {n}")
    indices = np.arange(n)
    if n_pool == n:
        return indices
    strat = labels if stratify and _can_stratify(labels, min(n_pool, n - n_pool)) else None
    pool, _ = train_test_split(indices, train_size=n_pool, random_state=seed, stratify=strat)
    return np.sort(pool)


def subsample(n: int, size: int | None, *, seed: int) -> np.ndarray:
    """Sorted seeded random subset of ``range(n)`` of at most ``size`` rows (all when None)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
