"""Did the generator's update help? The new adapter against the base model on a fixed set of
held-out prompts (the same prompts and sampling seeds every time), both rewarded the way the
update was trained: the same score, the same shaping (a gated kept text costs
``reward.gated_penalty``; a dropped one costs ``reward.invalid_penalty``, or is left out when
that is null, as it is left out of the update).

One statistic, paired: for every held-out sample (prompt ``g``, sample ``j``, the same seed on
both sides) the difference trained − base, over the samples both sides rewarded. Its mean is
the gain; its standard error is clustered by prompt (a prompt's samples are not independent;
CR1, ``G/(G−1)``), the z is mean / SE, and the 95 % interval uses Student's t with ``G − 1``
degrees of freedom. The percent figures divide by the base mean *over the same pairs*, so the
gain, its percent, its interval and its z always agree in sign.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from signal_al.core.run_state import text_pairs

__all__ = ["HELDOUT_SEED", "heldout_seed", "length_matched_gain", "paired_gain", "score_kept", "shaped_heldout_rewards",
           "words_of"]

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
        rows = [candidates[i] for i in kept]
        values = scorer.score([c.text or "" for c in rows], text_pairs(rows))
        scores[kept] = np.asarray(values, dtype=np.float64)
    return scores


def shaped_heldout_rewards(scores: np.ndarray, *, gated_penalty: float | None = None,
                           invalid_penalty: float | None = None) -> np.ndarray:
    """Held-out rewards shaped like the training rewards (NaN: a dropped text the update leaves out).

    ``scores`` is NaN where cleaning dropped the text. A kept text scored exactly 0 by the
    relevance gate gets ``gated_penalty`` (when set).

    >>> shaped_heldout_rewards(np.array([0.4, 0.0, np.nan]), gated_penalty=-0.3).tolist()
    [0.4, -0.3, nan]
    >>> shaped_heldout_rewards(np.array([0.4, np.nan]), invalid_penalty=-1.0).tolist()
    [0.4, -1.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    out = scores.copy()
    if gated_penalty is not None:
        out[scores == 0.0] = gated_penalty
    if invalid_penalty is not None:
        out[np.isnan(scores)] = invalid_penalty
    return out


def _t_quantile(df: int, level: float = 0.975) -> float:
    from scipy.stats import t  # scipy comes with scikit-learn

    return float(t.ppf(level, df))


def paired_gain(base: np.ndarray, trained: np.ndarray, groups: np.ndarray | None = None,
                prefix: str = "heldout_") -> dict[str, Any]:
    """The paired gain trained − base with its clustered z and 95 % interval (see the module docstring).

    ``groups``: the prompt of each sample (default: every sample its own cluster). NaN on
    either side removes the pair. Keys carry ``prefix``.

    >>> row = paired_gain(np.array([1.0, 2.0, np.nan, 1.0]), np.array([2.0, 2.0, 5.0, 3.0]))
    >>> row["heldout_reward_base"], row["heldout_reward_adapter"], row["heldout_gain"], row["heldout_paired_n"]
    (1.3333333333333333, 2.3333333333333335, 1.0, 3)
    >>> round(row["heldout_gain_pct"], 1), round(row["heldout_paired_z"], 3)  # SE = 1 / sqrt(3)
    (75.0, 1.732)
    >>> paired_gain(np.zeros(4), np.array([1.0, 2.0, 3.0, 6.0]), groups=np.array([0, 0, 1, 1]))["heldout_paired_z"]
    2.0
    """
    base, trained = np.asarray(base, dtype=np.float64), np.asarray(trained, dtype=np.float64)
    both = ~np.isnan(base) & ~np.isnan(trained)
    diff = trained[both] - base[both]
    labels = np.arange(base.size) if groups is None else np.asarray(groups)
    _, cluster = np.unique(labels[both], return_inverse=True)
    g = int(cluster.max()) + 1 if diff.size else 0
    row: dict[str, Any] = {
        "reward_base": float(base[both].mean()) if diff.size else None,
        "reward_adapter": float(trained[both].mean()) if diff.size else None,
        "gain": float(diff.mean()) if diff.size else None,
        "gain_pct": None, "gain_lo": None, "gain_hi": None, "gain_lo_pct": None, "gain_hi_pct": None,
        "paired_z": None, "paired_n": int(diff.size), "clusters": g,
        "valid_base": float((~np.isnan(base)).mean()) if base.size else None,
        "valid_adapter": float((~np.isnan(trained)).mean()) if trained.size else None,
    }
    if g > 1:
        sums = np.bincount(cluster, weights=diff - diff.mean())
        se = math.sqrt(g / (g - 1) * float(np.sum(sums ** 2))) / diff.size
        half = _t_quantile(g - 1) * se
        row.update(gain_lo=row["gain"] - half, gain_hi=row["gain"] + half)
        if se > 0:
            row["paired_z"] = row["gain"] / se
    scale = abs(row["reward_base"]) if row["reward_base"] else 0.0
    if scale > 0:
        for key in ("gain", "gain_lo", "gain_hi"):
            if row[key] is not None:
                row[f"{key}_pct"] = 100.0 * row[key] / scale
    return {f"{prefix}{key}": value for key, value in row.items()}


def words_of(candidates: Sequence[Any]) -> np.ndarray:
    """(N,) word count of each kept text, NaN for dropped ones (length beside every reward figure)."""
    return np.array([len((c.text or "").split()) if c.kept else np.nan for c in candidates], dtype=np.float64)


def length_matched_gain(base: np.ndarray, trained: np.ndarray, words_base: np.ndarray, words_trained: np.ndarray,
                        groups: np.ndarray, *, bins: int = 5, resamples: int = 500, seed: int = 0) -> dict[str, Any]:
    """The gain trained − base *within length bins*, standardised to the base model's lengths.

    A reward that favours short (or long) text rises when the generator merely changes length.
    Bins are quantiles of both sides' word counts pooled; the estimate is the base-share-weighted
    mean of the per-bin differences of mean reward (bins one side lacks are left out and the
    weights renormalised). The 95 % interval resamples prompts (both sides of a prompt together).

    >>> b, t = np.array([1.0, 1.0, 3.0, 3.0]), np.array([1.5, 1.5, 3.5, 3.5])
    >>> w = np.array([5.0, 5.0, 20.0, 20.0])
    >>> round(length_matched_gain(b, t, w, w, np.arange(4), bins=2, resamples=50)["length_matched_gain"], 6)
    0.5
    """
    base, trained = np.asarray(base, np.float64), np.asarray(trained, np.float64)
    words_base, words_trained = np.asarray(words_base, np.float64), np.asarray(words_trained, np.float64)
    groups = np.asarray(groups)

    def estimate(rows_base: np.ndarray, rows_trained: np.ndarray) -> float | None:
        rb, wb = base[rows_base], words_base[rows_base]
        rt, wt = trained[rows_trained], words_trained[rows_trained]
        ok_b, ok_t = ~np.isnan(rb) & ~np.isnan(wb), ~np.isnan(rt) & ~np.isnan(wt)
        rb, wb, rt, wt = rb[ok_b], wb[ok_b], rt[ok_t], wt[ok_t]
        if not rb.size or not rt.size:
            return None
        edges = np.unique(np.quantile(np.concatenate([wb, wt]), np.linspace(0, 1, bins + 1)))
        if edges.size < 2:
            return float(rt.mean() - rb.mean())
        bin_b = np.clip(np.searchsorted(edges, wb, side="right") - 1, 0, edges.size - 2)
        bin_t = np.clip(np.searchsorted(edges, wt, side="right") - 1, 0, edges.size - 2)
        total, weight = 0.0, 0.0
        for k in range(edges.size - 1):
            in_b, in_t = bin_b == k, bin_t == k
            if in_b.any() and in_t.any():
                share = in_b.mean()
                total += float(share * (rt[in_t].mean() - rb[in_b].mean()))
                weight += float(share)
        return total / weight if weight > 0 else None

    rows = np.arange(base.size)
    point = estimate(rows, rows)
    row: dict[str, Any] = {"length_matched_gain": point, "length_matched_lo": None, "length_matched_hi": None}
    prompts = np.unique(groups)
    if point is None or prompts.size < 2:
        return row
    rng = np.random.default_rng(seed)
    members = {g: np.flatnonzero(groups == g) for g in prompts}
    draws = []
    for _ in range(resamples):
        picked = np.concatenate([members[g] for g in rng.choice(prompts, size=prompts.size, replace=True)])
        value = estimate(picked, picked)
        if value is not None:
            draws.append(value)
    if draws:
        row["length_matched_lo"], row["length_matched_hi"] = (float(x) for x in np.quantile(draws, [0.025, 0.975]))
    return row
