"""Statistics over seeds for paired comparisons: a t interval and p-value, Holm's correction, and power.

A grid's unit of replication is the seed (one pool, seed set and classifier initialisation
shared by every method), so every comparison here is one number per seed (a paired
difference) and the seeds are the sample. Pure functions of arrays; scipy supplies the t and
noncentral t distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["PairedSummary", "detectable_effect", "holm", "paired_summary", "power", "seeds_needed"]


@dataclass(frozen=True)
class PairedSummary:
    """Mean of per-seed differences with its two-sided t interval and p-value (H0: mean 0).

    ``sd``, ``low``, ``high``, ``t`` and ``p`` are NaN where undefined: one seed has no spread,
    and differences with no spread at all have no t statistic.
    """

    n: int
    mean: float
    sd: float
    low: float
    high: float
    t: float
    p: float


def paired_summary(differences: Sequence[float], confidence: float = 0.95) -> PairedSummary:
    """The mean of ``differences`` (one per seed), its ``confidence`` t interval over seeds and
    the two-sided one-sample t test's p-value.

    >>> s = paired_summary([1.0, 2.0, 3.0])
    >>> s.n, s.mean, s.sd, round(s.low, 3), round(s.high, 3), round(s.p, 4)
    (3, 2.0, 1.0, -0.484, 4.484, 0.0742)
    """
    from scipy import stats

    values = np.asarray(differences, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        raise ValueError("no differences to summarise")
    mean = float(values.mean())
    nan = float("nan")
    if n == 1:
        return PairedSummary(1, mean, nan, nan, nan, nan, nan)
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    if sd == 0.0:
        return PairedSummary(n, mean, sd, mean, mean, nan, nan)
    t = mean / (sd / math.sqrt(n))
    return PairedSummary(n, mean, sd, mean - half, mean + half, t, float(2 * stats.t.sf(abs(t), n - 1)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` for their number (family-wise error).

    An undefined p-value (NaN) still counts in the number of tests, ranked as 1, and stays NaN.

    >>> [round(p, 6) for p in holm([0.01, 0.04, 0.03, 0.005])]
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    ranked = np.where(np.isnan(p), 1.0, p)
    order = np.argsort(ranked, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ranked[index]))
        adjusted[index] = running
    return [float("nan") if math.isnan(p[i]) else float(adjusted[i]) for i in range(m)]


def power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """The chance that a two-sided paired t test at level ``alpha`` over ``n`` seeds rejects
    H0 when the true mean difference is ``effect`` and the per-seed spread is ``sd``."""
    from scipy import stats

    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = effect * math.sqrt(n) / sd
    upper, lower = float(stats.nct.sf(critical, df, shift)), float(stats.nct.cdf(-critical, df, shift))
    # far in a tail scipy's noncentral t can return NaN for what is 0 (or 1) to double precision
    upper = upper if not math.isnan(upper) else float(shift > critical)
    lower = lower if not math.isnan(lower) else float(-shift > critical)
    return upper + lower


def detectable_effect(sd: float, n: int, target_power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true mean difference a two-sided paired t test at level ``alpha`` over ``n``
    seeds detects with probability ``target_power``, when the per-seed spread is ``sd``
    (exact, from the noncentral t distribution). NaN with fewer than 2 seeds or no spread."""
    from scipy.optimize import brentq

    if n < 2 or not sd > 0:
        return float("nan")
    high = sd
    while power(high, sd, n, alpha) < target_power:
        high *= 2
    return float(brentq(lambda effect: power(effect, sd, n, alpha) - target_power, 0.0, high, xtol=1e-12 * sd))


def seeds_needed(sd: float, effect: float, target_power: float = 0.8, alpha: float = 0.05,
                 most: int = 10_000) -> int | None:
    """The fewest seeds whose detectable effect (see :func:`detectable_effect`) is at most
    ``effect``, for the per-seed spread ``sd``; None when undefined or beyond ``most``."""
    if not sd > 0 or not effect > 0:
        return None
    for n in range(2, most + 1):
        if power(effect, sd, n, alpha) >= target_power:
            return n
    return None
