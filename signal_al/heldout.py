"""Did this round's generator update help? The new adapter against the base model on a fixed
set of held-out prompts (the same prompts and sampling seeds every round), both scored by
the round's classifier against the round's labeled set.

Only candidates that survive cleaning are scored; the lift is paired over the prompts
where both generators wrote a valid candidate, so a generator cannot gain by writing
text that cleaning drops.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

__all__ = ["HELDOUT_SEED", "heldout_seed", "lift_stats", "score_kept"]

#: Offset of the held-out prompts' seed from the run seed (training prompts use seed·1000003 + round).
HELDOUT_SEED = 7_770_001


def heldout_seed(run_seed: int) -> int:
    """The sampling seed of a run's held-out prompts: fixed for the run, apart from every round's."""
    return HELDOUT_SEED + run_seed


def score_kept(candidates: Sequence[Any], scorer: Any) -> np.ndarray:
    """(N,) SIGnAL scores of the candidates, NaN where cleaning dropped one."""
    scores = np.full(len(candidates), np.nan)
    kept = [i for i, c in enumerate(candidates) if c.kept]
    if kept:
        pairs = [candidates[i].text_pair for i in kept]
        values = scorer.score([candidates[i].text or "" for i in kept],
                              None if all(p is None for p in pairs) else [p or "" for p in pairs])
        scores[kept] = np.asarray(values, dtype=np.float64)
    return scores


def lift_stats(base: np.ndarray, adapter: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """Mean rewards, their relative lift in % and the paired z of adapter − base.

    ``groups`` (the prompt of each sample): samples of one prompt are not independent, so
    the z uses the cluster-robust standard error over prompts, with the G/(G−1) correction;
    with one sample per prompt it is the ordinary paired z.

    >>> row = lift_stats(np.array([1.0, 2.0, np.nan]), np.array([2.0, 2.0, 5.0]))
    >>> row["heldout_reward_base"], row["heldout_reward_adapter"], row["heldout_lift_pct"]
    (1.5, 3.0, 100.0)
    >>> row["heldout_paired_n"], row["heldout_valid_adapter"]
    (2, 1.0)
    >>> lift_stats(np.zeros(4), np.array([1.0, 2.0, 3.0, 6.0]), groups=np.array([0, 0, 1, 1]))["heldout_paired_z"]
    2.0
    """
    base, adapter = np.asarray(base, dtype=np.float64), np.asarray(adapter, dtype=np.float64)
    both = ~np.isnan(base) & ~np.isnan(adapter)
    diff = adapter[both] - base[both]
    mean_base = float(np.nanmean(base)) if (~np.isnan(base)).any() else None
    mean_adapter = float(np.nanmean(adapter)) if (~np.isnan(adapter)).any() else None
    lift = None
    if mean_base is not None and mean_adapter is not None and mean_base != 0:
        lift = 100.0 * (mean_adapter - mean_base) / abs(mean_base)
    z = None
    if diff.size > 1:
        labels = np.arange(diff.size) if groups is None else np.asarray(groups)[both]
        _, cluster = np.unique(labels, return_inverse=True)
        sums = np.bincount(cluster, weights=diff - diff.mean())
        g = sums.size
        variance = g / (g - 1) * float(np.sum(sums ** 2)) / diff.size ** 2 if g > 1 else 0.0
        if variance > 0:
            z = float(diff.mean() / math.sqrt(variance))
    return {"heldout_reward_base": mean_base, "heldout_reward_adapter": mean_adapter, "heldout_lift_pct": lift,
            "heldout_paired_z": z, "heldout_paired_n": int(diff.size),
            "heldout_valid_base": float((~np.isnan(base)).mean()) if base.size else None,
            "heldout_valid_adapter": float((~np.isnan(adapter)).mean()) if adapter.size else None}
