"""The pool-based reference and the primary endpoints of a grid, fixed before looking at results.

Each question a grid answers has one endpoint, defined here once and for every grid, so the
numbers a report leads with cannot be chosen after seeing the curves:

- **past the pool**: ``signal``'s mean accuracy over its steps in 110-200 % of the pool, minus
  the pool-based reference (below) in the same seed;
- **RL matters**: ``signal`` minus ``signal-frozen``, mean over the steps in 20-200 %;
- **before the pool**: the area under ``signal``'s curve over 10-100 % minus the area under
  each pool-based method's (trapezoid over the steps, divided by the width, so in accuracy).

The **pool-based reference** is the best point of any pool-based method's mean curve over
every acquired % (a pool-based method's curve ends at 100 %, but many peak before), reported
with the pool-based mean at 100 %, where every pool-based method holds the same labels and
their differences are training noise. Every endpoint is one number per seed (paired by
seed); :mod:`signal_al.experiments.stats` gives its t interval, its p-value (Holm-corrected for
the number of endpoints of the report) and the smallest effect the seeds can detect.
Pure functions of the metrics frame (:func:`signal_al.experiments.report.collect_metrics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from signal_al.engine.methods import in_signal_family
from signal_al.experiments.stats import PairedSummary, detectable_effect, holm, paired_summary, seeds_needed

__all__ = ["AREA_WINDOW", "DETECT_ALPHA", "DETECT_POWER", "Endpoint", "PAST_WINDOW", "PoolReference", "RL_WINDOW",
           "TARGET_EFFECT", "endpoints_frame", "endpoints_markdown", "pool_reference", "power_statement",
           "primary_endpoints", "reference_markdown"]

MAIN, FROZEN = "signal", "signal-frozen"
#: Acquired % (of the real pool) each endpoint covers, ends included.
PAST_WINDOW = (110.0, 200.0)
RL_WINDOW = (20.0, 200.0)
AREA_WINDOW = (10.0, 100.0)
#: The power statement: the smallest effect detected with this power by a two-sided test at this level...
DETECT_POWER, DETECT_ALPHA = 0.8, 0.05
#: ... and the seeds needed to detect this effect (2 accuracy points).
TARGET_EFFECT = 0.02
_EPS = 1e-6


@dataclass(frozen=True)
class PoolReference:
    """The best point of any pool-based mean curve, and the pool-based mean at 100 %."""

    strategy: str  #: the pool-based method whose mean curve has the best point
    pct: float  #: the acquired % of that point
    value: float  #: its mean over seeds
    per_seed: dict[int, float]  #: that method's value at that point, by seed: the paired reference
    mean_at_full: float | None  #: the mean over pool-based methods of their mean at 100 % (None: none got there)
    methods_at_full: int  #: how many pool-based methods reached 100 %


def _per_seed(frame: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` by (strategy, seed, acquired %), averaged over runs that share all three."""
    return frame.groupby(["strategy", "seed", "acquired_pct"])[metric].mean()


def pool_reference(frame: pd.DataFrame, metric: str = "accuracy") -> PoolReference | None:
    """The pool-based reference of the runs in ``frame``; None without pool-based runs.

    Ties go to the first (strategy, %) in sorted order.

    >>> frame = pd.DataFrame({"strategy": ["random"] * 4 + ["cal"] * 4 + ["signal"] * 2,
    ...     "seed": [0, 0, 1, 1] * 2 + [0, 1], "acquired_pct": [50.0, 100.0] * 4 + [150.0] * 2,
    ...     "accuracy": [0.60, 0.70, 0.64, 0.72, 0.74, 0.68, 0.70, 0.70, 0.9, 0.9]})
    >>> ref = pool_reference(frame)
    >>> ref.strategy, ref.pct, round(ref.value, 4), ref.per_seed, round(ref.mean_at_full, 4), ref.methods_at_full
    ('cal', 50.0, 0.72, {0: 0.74, 1: 0.7}, 0.7, 2)
    """
    pool = frame[~frame["strategy"].map(in_signal_family).astype(bool)]
    if pool.empty:
        return None
    per_seed = _per_seed(pool, metric)
    curves = per_seed.groupby(level=["strategy", "acquired_pct"]).mean().sort_index()
    strategy, pct = curves.idxmax()
    at_full = curves[np.isclose(curves.index.get_level_values("acquired_pct"), 100.0)]
    best = per_seed.xs((strategy, pct), level=["strategy", "acquired_pct"])
    return PoolReference(strategy=str(strategy), pct=float(pct), value=float(curves.max()),
                         per_seed={int(seed): float(value) for seed, value in best.items()},
                         mean_at_full=float(at_full.mean()) if len(at_full) else None,
                         methods_at_full=int(len(at_full)))


@dataclass(frozen=True)
class Endpoint:
    """One primary endpoint: its per-seed values, their summary and the power statement."""

    question: str
    name: str
    points: tuple[float, ...]  #: the acquired % it covers (the grid's steps inside its window)
    per_seed: dict[int, float]
    summary: PairedSummary
    p_holm: float
    detectable: float  #: smallest true effect detected with DETECT_POWER at DETECT_ALPHA (two-sided)
    seeds_for_target: int | None  #: seeds whose detectable effect is TARGET_EFFECT, at this spread
    left_out: int  #: seeds an arm ran that could not be paired (a step of the window missing)


def _points(curves: pd.Series, strategy: str, window: tuple[float, float]) -> list[float]:
    """The acquired % ``strategy`` reached (in any seed) inside ``window``."""
    if strategy not in curves.index.get_level_values("strategy"):
        return []
    pcts = curves.xs(strategy, level="strategy").index.get_level_values("acquired_pct")
    return sorted({float(p) for p in pcts if window[0] - _EPS <= p <= window[1] + _EPS})


def _seeds(curves: pd.Series, strategy: str) -> set[int]:
    if strategy not in curves.index.get_level_values("strategy"):
        return set()
    return {int(s) for s in curves.xs(strategy, level="strategy").index.get_level_values("seed")}


def _curve(curves: pd.Series, strategy: str, seed: int, points: list[float]) -> np.ndarray | None:
    """``strategy``'s values in ``seed`` at ``points``; None when a point is missing."""
    try:
        values = curves.xs((strategy, seed), level=["strategy", "seed"])
    except KeyError:
        return None
    found = {round(float(p), 6): float(v) for p, v in values.items()}
    wanted = [found.get(round(p, 6)) for p in points]
    return None if any(v is None for v in wanted) else np.asarray(wanted, dtype=np.float64)


def _area(values: np.ndarray, points: list[float]) -> float:
    """The trapezoid area under the curve divided by its width: the curve's mean height."""
    x = np.asarray(points, dtype=np.float64)
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def _paired(curves: pd.Series, arms: tuple[str, str | None], points: list[float], statistic,
            reference: dict[int, float] | None = None) -> tuple[dict[int, float], int]:
    """Per seed: statistic(first arm) - statistic(second arm) (or minus ``reference[seed]``), and
    how many seeds the arms ran that lack a point."""
    first, second = arms
    seeds = _seeds(curves, first) | (_seeds(curves, second) if second else set(reference or {}))
    values = {}
    for seed in sorted(seeds):
        a = _curve(curves, first, seed, points)
        if a is None:
            continue
        if second is None:
            if reference is None or seed not in reference:
                continue
            values[seed] = float(statistic(a) - reference[seed])
        else:
            b = _curve(curves, second, seed, points)
            if b is not None:
                values[seed] = float(statistic(a) - statistic(b))
    run_by_both = _seeds(curves, first) & (_seeds(curves, second) if second else set(reference or {}))
    return values, len(run_by_both) - len(values)


def primary_endpoints(frame: pd.DataFrame, metric: str = "accuracy") -> list[Endpoint]:
    """The primary endpoints the runs in ``frame`` measure (those they have no seed for are left
    out), with p-values Holm-corrected over all of them."""
    curves = _per_seed(frame, metric)
    found: list[tuple[str, str, list[float], dict[int, float], int]] = []
    reference = pool_reference(frame, metric)
    past = _points(curves, MAIN, PAST_WINDOW)
    if reference is not None and past:
        values, left = _paired(curves, (MAIN, None), past, np.mean, reference.per_seed)
        found.append(("past the pool", f"{MAIN} minus the pool-based reference, mean over "
                      f"{PAST_WINDOW[0]:g}-{PAST_WINDOW[1]:g} %", past, values, left))
    rl = sorted(set(_points(curves, MAIN, RL_WINDOW)) & set(_points(curves, FROZEN, RL_WINDOW)))
    if rl:
        values, left = _paired(curves, (MAIN, FROZEN), rl, np.mean)
        found.append(("RL matters", f"{MAIN} minus {FROZEN}, mean over {RL_WINDOW[0]:g}-{RL_WINDOW[1]:g} %",
                      rl, values, left))
    pool_methods = sorted({str(s) for s in curves.index.get_level_values("strategy") if not in_signal_family(s)})
    for method in pool_methods:
        area = sorted(set(_points(curves, MAIN, AREA_WINDOW)) & set(_points(curves, method, AREA_WINDOW)))
        if len(area) >= 2:
            values, left = _paired(curves, (MAIN, method), area, lambda v, x=area: _area(v, x))
            found.append(("before the pool", f"{MAIN} minus {method}, area under "
                          f"{AREA_WINDOW[0]:g}-{AREA_WINDOW[1]:g} %", area, values, left))
    found = [entry for entry in found if entry[3]]
    summaries = [paired_summary(list(values.values())) for _, _, _, values, _ in found]
    adjusted = holm([s.p for s in summaries])
    return [Endpoint(question=question, name=name, points=tuple(points), per_seed=values, summary=summary,
                     p_holm=p, detectable=detectable_effect(summary.sd, summary.n, DETECT_POWER, DETECT_ALPHA),
                     seeds_for_target=seeds_needed(summary.sd, TARGET_EFFECT, DETECT_POWER, DETECT_ALPHA),
                     left_out=left)
            for (question, name, points, values, left), summary, p in zip(found, summaries, adjusted)]


def _points_text(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:+.1f}"


def _p_text(p: float) -> str:
    return "-" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _steps_text(points: tuple[float, ...]) -> str:
    return f"{points[0]:g}-{points[-1]:g} % ({len(points)} steps)"


def reference_markdown(reference: PoolReference, metric: str = "accuracy") -> str:
    """The reference's definition and values, for a results page."""
    at_full = ("no pool-based method reached 100 %" if reference.mean_at_full is None else
               f"the pool-based mean at 100 % is **{100 * reference.mean_at_full:.1f}** (the mean of "
               f"{reference.methods_at_full} pool-based methods' means; all of them hold the same labels there, so "
               "their differences at 100 % are training noise)")
    return (f"Pool-based reference ({metric}), fixed before looking: the best point of any pool-based method's "
            f"mean curve over every acquired %, **{100 * reference.value:.1f}** ({reference.strategy} at "
            f"{reference.pct:g} %, {len(reference.per_seed)} seeds); {at_full}. Both are drawn in the plot. Being the "
            "maximum of several noisy mean curves, the reference sits above a typical pool-based method's best, "
            "which makes comparisons with it conservative.\n")


def endpoints_markdown(endpoints: list[Endpoint]) -> str:
    """The primary endpoints as a table (accuracy points), then what the columns mean."""
    lines = ["| question | endpoint | steps | seeds | per seed | mean | 95 % CI | p | p (Holm) | detectable | "
             f"seeds for {100 * TARGET_EFFECT:g} points |", "|" + " --- |" * 11]
    for e in endpoints:
        s = e.summary
        interval = "-" if math.isnan(s.low) else f"[{_points_text(s.low)}, {_points_text(s.high)}]"
        seeds = f"{s.n}" + (f" ({e.left_out} left out)" if e.left_out else "")
        per_seed = ", ".join(f"{_points_text(v)}" for _, v in sorted(e.per_seed.items()))
        detectable = "-" if math.isnan(e.detectable) else f"{100 * e.detectable:.1f}"
        needed = "-" if e.seeds_for_target is None else str(e.seeds_for_target)
        lines.append(f"| {e.question} | {e.name} | {_steps_text(e.points)} | {seeds} | {per_seed} | "
                     f"{_points_text(s.mean)} | {interval} | {_p_text(s.p)} | {_p_text(e.p_holm)} | {detectable} | "
                     f"{needed} |")
    return "\n".join(lines) + "\n\n" + power_statement(endpoints) + (
        "Points of accuracy, one value per seed, paired by seed (per seed: by seed number). 95 % CI: t "
        "interval over seeds. p: two-sided one-sample t test of the per-seed values; p (Holm): corrected for "
        f"the {len(endpoints)} endpoints of this table. detectable: the smallest true effect a two-sided "
        f"{100 * DETECT_ALPHA:g} % paired t test over these seeds detects with {100 * DETECT_POWER:g} % power, given "
        f"the per-seed spread measured here; seeds for {100 * TARGET_EFFECT:g} points: the seeds that spread needs "
        f"for a detectable effect of {100 * TARGET_EFFECT:g} points. One seed gives no interval, p or power. A seed "
        "left out lacks a step of the window in one arm.\n")


def power_statement(endpoints: list[Endpoint]) -> str:
    """One paragraph: what the past-the-pool endpoint can detect with these seeds, and the seeds a
    2-point detectable effect needs at the spread measured here ("" without that endpoint)."""
    past = next((e for e in endpoints if e.question == "past the pool"), None)
    if past is None:
        return ""
    if math.isnan(past.detectable):
        return (f"Power: the past-the-pool endpoint has {past.summary.n} seed(s) and no spread to measure, so what "
                "the grid can detect is unknown.\n\n")
    needed = ("more than 10,000" if past.seeds_for_target is None else str(past.seeds_for_target))
    return (f"Power: with {past.summary.n} seeds and the per-seed spread measured here (sd "
            f"{100 * past.summary.sd:.1f} points), the past-the-pool endpoint detects a true difference of "
            f"{100 * past.detectable:.1f} points with {100 * DETECT_POWER:g} % power (two-sided {100 * DETECT_ALPHA:g} "
            f"%); a detectable difference of {100 * TARGET_EFFECT:g} points needs {needed} seeds.\n\n")


def endpoints_frame(endpoints: list[Endpoint]) -> pd.DataFrame:
    """The endpoints as rows (fractions of accuracy, not points), for endpoints.csv."""
    return pd.DataFrame([{
        "question": e.question, "endpoint": e.name, "first_pct": e.points[0], "last_pct": e.points[-1],
        "steps": len(e.points), "seeds": e.summary.n, "left_out": e.left_out,
        "per_seed": " ".join(f"{seed}:{float(value)!r}" for seed, value in sorted(e.per_seed.items())),
        "mean": e.summary.mean, "sd": e.summary.sd, "ci_low": e.summary.low, "ci_high": e.summary.high,
        "t": e.summary.t, "p": e.summary.p, "p_holm": e.p_holm, "detectable": e.detectable,
        "seeds_for_target": e.seeds_for_target} for e in endpoints],
        columns=["question", "endpoint", "first_pct", "last_pct", "steps", "seeds", "left_out", "per_seed", "mean",
                 "sd", "ci_low", "ci_high", "t", "p", "p_holm", "detectable", "seeds_for_target"]).astype(
        {"seeds_for_target": "Int64"})
