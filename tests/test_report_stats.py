"""The statistics behind the primary endpoints: t intervals and p-values against tabulated and
closed-form values, Holm against a hand computation, power against a numpy Monte Carlo, and the
endpoints of a fake grid against a brute-force float64 computation from its metrics rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from report_grid import write_fake_grid
from signal_al.experiments.endpoints import (AREA_WINDOW, PAST_WINDOW, RL_WINDOW, endpoints_frame, endpoints_markdown,
                                             pool_reference, primary_endpoints)
from signal_al.experiments.report import collect_metrics
from signal_al.experiments.stats import detectable_effect, holm, paired_summary, power, seeds_needed

#: Two-sided 95 % critical values of Student's t by degrees of freedom (a printed table, 3 decimals).
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 9: 2.262, 13: 2.160, 14: 2.145, 19: 2.093,
           29: 2.045}


def _p_closed_form(t: float, df: int) -> float:
    """Two-sided p of Student's t with 1 or 2 degrees of freedom, from its closed-form CDF."""
    if df == 1:
        return 1 - 2 / math.pi * math.atan(abs(t))
    if df == 2:
        return 1 - abs(t) / math.sqrt(2 + t * t)
    raise ValueError(df)


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_the_interval_uses_the_tabulated_t_quantile(df: int) -> None:
    values = np.random.default_rng(df).normal(0.01, 0.03, size=df + 1)
    summary = paired_summary(values)
    se = values.std(ddof=1) / math.sqrt(df + 1)
    assert summary.n == df + 1 and summary.mean == pytest.approx(values.mean(), abs=1e-15)
    assert summary.sd == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert (summary.high - summary.mean) / se == pytest.approx(T_TABLE[df], abs=6e-4)
    assert (summary.mean - summary.low) / se == pytest.approx(T_TABLE[df], abs=6e-4)
    # at the interval's edge the p-value is exactly 5 %: the interval and the test agree
    edge = paired_summary(values - summary.low)
    assert edge.p == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize("values", [[0.03, 0.01], [0.02, -0.005], [0.034, 0.0085, -0.0235], [0.01, 0.02, 0.04]])
def test_the_p_value_matches_the_closed_form_cdf(values: list[float]) -> None:
    summary = paired_summary(values)
    array = np.asarray(values, dtype=np.float64)
    t = array.mean() / (array.std(ddof=1) / math.sqrt(array.size))
    assert summary.t == pytest.approx(t, rel=1e-12)
    assert summary.p == pytest.approx(_p_closed_form(t, array.size - 1), rel=1e-9)


def test_one_seed_and_no_spread_have_no_interval_or_p() -> None:
    one = paired_summary([0.02])
    assert one.n == 1 and one.mean == 0.02
    assert all(math.isnan(v) for v in (one.sd, one.low, one.high, one.t, one.p))
    flat = paired_summary([0.0, 0.0, 0.0])
    assert flat.sd == 0.0 and (flat.low, flat.high) == (0.0, 0.0) and math.isnan(flat.p)
    with pytest.raises(ValueError):
        paired_summary([])


def test_holm_against_a_hand_computation() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    # capped at 1; an undefined p counts in m, ranks last and stays undefined
    adjusted = holm([0.3, float("nan"), 0.02])
    assert adjusted[0] == pytest.approx(0.6) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.06)
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []


def _monte_carlo_power(effect: float, sd: float, n: int, trials: int = 400_000) -> float:
    """How often a two-sided 5 % paired t test (tabulated critical value) rejects, by simulation."""
    rng = np.random.default_rng(12345 + n)
    draws = rng.normal(effect, sd, size=(trials, n))
    t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / math.sqrt(n))
    return float(np.mean(np.abs(t) > T_TABLE[n - 1]))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_detectable_effect_has_80_percent_power_by_simulation(n: int) -> None:
    sd = 0.028
    effect = detectable_effect(sd, n)
    assert power(effect, sd, n) == pytest.approx(0.8, abs=1e-9)
    simulated = _monte_carlo_power(effect, sd, n)
    assert simulated == pytest.approx(0.8, abs=0.004)  # 6 standard errors of 400,000 trials
    assert _monte_carlo_power(0.8 * effect, sd, n) < 0.78  # a smaller effect is detected less often
    assert math.isnan(detectable_effect(sd, 1)) and math.isnan(detectable_effect(0.0, 5))


def test_seeds_needed_is_the_first_seed_count_with_enough_power() -> None:
    sd, effect = 0.025, 0.02
    n = seeds_needed(sd, effect)
    assert n is not None and n > 3
    assert detectable_effect(sd, n) <= effect < detectable_effect(sd, n - 1)
    # by simulation: n seeds detect a 2-point effect at least 80 % of the time, n - 1 do not
    assert _monte_carlo_power(effect, sd, n) > 0.8 - 0.004
    assert _monte_carlo_power(effect, sd, n - 1) < 0.8
    assert seeds_needed(0.0, effect) is None and seeds_needed(1.0, 1e-6, most=50) is None


def _rows(root: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(root.rglob("metrics.jsonl")) for line in path.read_text().splitlines()]


def test_the_endpoints_of_a_fake_grid_against_a_brute_force_computation(tmp_path: Path) -> None:
    rows = _rows(write_fake_grid(tmp_path / "runs"))
    acc = {(r["strategy"], r["seed"], r["target_pct"]): r["accuracy"] for r in rows}
    seeds = lambda method: sorted({s for m, s, _ in acc if m == method})  # noqa: E731
    pool = [m for m in ("badge", "coreset", "random")]
    curve = {(m, p): np.mean([acc[m, s, p] for s in seeds(m)], dtype=np.float64)
             for m in pool for p in range(10, 101, 10)}
    best, best_pct = max(curve, key=curve.get)
    frame = collect_metrics(tmp_path / "runs")
    reference = pool_reference(frame)
    assert (reference.strategy, reference.pct, reference.value) == (best, best_pct, pytest.approx(curve[best, best_pct]))
    assert reference.mean_at_full == pytest.approx(np.mean([curve[m, 100] for m in pool]))
    expected: dict[str, list[float]] = {}
    past = range(int(PAST_WINDOW[0]), int(PAST_WINDOW[1]) + 1, 10)
    expected["past the pool"] = [np.mean([acc["signal", s, p] for p in past]) - acc[best, s, best_pct]
                                 for s in seeds("signal")]
    rl = range(int(RL_WINDOW[0]), int(RL_WINDOW[1]) + 1, 10)
    both = [s for s in seeds("signal") if all(("signal-frozen", s, p) in acc for p in rl)]
    assert both == [0, 1]  # signal-frozen seed 2 stops at 150 %
    expected["RL matters"] = [np.mean([acc["signal", s, p] - acc["signal-frozen", s, p] for p in rl]) for s in both]
    x = np.arange(AREA_WINDOW[0], AREA_WINDOW[1] + 1, 10)
    for method in sorted(pool):
        paired = sorted(set(seeds("signal")) & set(seeds(method)))
        expected[method] = [(np.trapezoid([acc["signal", s, p] for p in x], x)
                             - np.trapezoid([acc[method, s, p] for p in x], x)) / (x[-1] - x[0]) for s in paired]
    found = primary_endpoints(frame)
    assert [e.question for e in found] == ["past the pool", "RL matters"] + ["before the pool"] * 3
    assert [e.left_out for e in found] == [0, 1, 0, 0, 0]
    keys = ["past the pool", "RL matters", *sorted(pool)]
    p_values = []
    for endpoint, key in zip(found, keys):
        values = np.asarray(expected[key], dtype=np.float64)
        assert list(endpoint.per_seed.values()) == pytest.approx(values, abs=1e-12)
        s = endpoint.summary
        se = values.std(ddof=1) / math.sqrt(values.size)
        assert s.mean == pytest.approx(values.mean(), abs=1e-12)
        assert s.high == pytest.approx(values.mean() + T_TABLE[values.size - 1] * se, abs=1e-3 * se)
        t = values.mean() / se
        assert s.p == pytest.approx(_p_closed_form(t, values.size - 1), rel=1e-9)
        p_values.append(_p_closed_form(t, values.size - 1))
    # Holm by hand over the 5 endpoints: sort, scale by m - rank, make monotone, cap at 1
    order = np.argsort(p_values)
    running, adjusted = 0.0, [0.0] * len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    assert [e.p_holm for e in found] == pytest.approx(adjusted, rel=1e-9)
    table = endpoints_markdown(found)
    first = found[0]
    assert (f"| past the pool | signal minus the pool-based reference, mean over 110-200 % | 110-200 % (10 steps) | 3 | "
            + ", ".join(f"{100 * v:+.1f}" for v in expected["past the pool"])) in table
    assert f"[{100 * first.summary.low:+.1f}, {100 * first.summary.high:+.1f}]" in table
    assert "| 2 (1 left out) |" in table and "corrected for the 5 endpoints" in table
    assert (f"Power: with 3 seeds and the per-seed spread measured here (sd {100 * first.summary.sd:.1f} points), the "
            f"past-the-pool endpoint detects a true difference of {100 * first.detectable:.1f} points with 80 % power "
            f"(two-sided 5 %); a detectable difference of 2 points needs {first.seeds_for_target} seeds.") in table
    csv = endpoints_frame(found)
    assert list(csv["seeds"]) == [3, 2, 3, 2, 3] and csv["seeds_for_target"].dtype.name == "Int64"


def test_endpoints_a_grid_does_not_measure_are_left_out(tmp_path: Path) -> None:
    frame = collect_metrics(write_fake_grid(tmp_path / "runs"))
    pool_only = frame[~frame["strategy"].str.startswith("signal")]
    assert primary_endpoints(pool_only) == []
    to_the_pool = frame[frame["acquired_pct"] <= 100]
    assert [e.question for e in primary_endpoints(to_the_pool)] == ["RL matters"] + ["before the pool"] * 3
    one_seed = frame[frame["seed"] == 0]
    endpoints = primary_endpoints(one_seed)
    assert all(e.summary.n == 1 and math.isnan(e.p_holm) and math.isnan(e.detectable) for e in endpoints)
    text = endpoints_markdown(endpoints)
    assert "| - | - | - | - |" in text  # no interval, p, Holm p or power from one seed
    assert "Power: the past-the-pool endpoint has 1 seed(s) and no spread to measure" in text
