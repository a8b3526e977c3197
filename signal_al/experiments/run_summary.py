"""One run as ``signal-al run`` prints it: its rounds, the run against its same-seed baselines with
the pool-based reference, and its closing summary in plain words (:mod:`signal_al.experiments.summary`).
Tables as text cells (the command renders them), from the runs' metrics rows
like every report (:mod:`signal_al.experiments.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from signal_al.experiments.endpoints import pool_reference
from signal_al.experiments.report import collect_metrics
from signal_al.experiments.summary import plain_summary

__all__ = ["baseline_comparison", "ceiling_line", "closing_summary", "heldout_cell", "rounds_table", "synthetic_cell"]


def rounds_table(metrics: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    """A run's metrics rows as a table (columns, cells); SIGnAL rounds add the generator's columns."""
    generating = any(row.get("reward_mean") is not None or "adapter" in row for row in metrics)
    columns = ["round", "labeled", "acquired", "synthetic", "accuracy", "macro-F1", "class std"]
    if generating:
        columns += ["syn. selected", "reward mean", "KL(new‖base)", "held-out gain [95 % CI]", "served Δlogp",
                    "dropped", "distinct-2", "seconds"]

    def number(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows, previous = [], 0
    for row in metrics:
        cells = [str(row["round"]), str(row["n_labeled"]), f"{row['acquired_pct']:.0f} %", str(row["n_synthetic"]),
                 f"{row['accuracy']:.4f}", f"{row['macro_f1']:.4f}", f"{row['class_count_std']:.2f}"]
        if generating:
            cells += [synthetic_cell(row, previous), number(row.get("reward_mean"), ".3g"),
                      number(row.get("kl_new_base"), ".3g"), heldout_cell(row),
                      number(row.get("served_logprob_mae"), ".1e"), number(row.get("dropped_fraction"), ".0%"),
                      number(row.get("distinct_2"), ".2f"), number(sum((row.get("seconds") or {}).values()), ".0f")]
        rows.append(cells)
        previous = row["n_labeled"]
    return columns, rows


def synthetic_cell(row: dict, previous: int) -> str:
    """The round's synthetic picks and their share of its labels: '12 (20 %)'."""
    n = row.get("n_synthetic_selected")
    if n is None:
        return "-"
    return f"{n} ({100 * n / max(row['n_labeled'] - previous, 1):.0f} %)"


def heldout_cell(row: dict) -> str:
    """The held-out paired gain of the new adapter over the base model, in reward units: '+0.012 [-0.003, +0.027]'.

    Not a percentage: the SIGnAL reward falls toward 0 as the classifier learns, and a percentage of a base
    near 0 reads +17848 % for a gain of 0.01.

    >>> heldout_cell({"heldout_gain": 0.0123, "heldout_gain_lo": -0.00312, "heldout_gain_hi": 0.0277})
    '+0.012 [-0.0031, +0.028]'
    """
    gain, lo, hi = row.get("heldout_gain"), row.get("heldout_gain_lo"), row.get("heldout_gain_hi")
    if gain is None:
        return "-"
    return f"{gain:+.2g}" + (f" [{lo:+.2g}, {hi:+.2g}]" if lo is not None and hi is not None else "")


def baseline_comparison(run_dir: Path) -> tuple[str, list[str], list[list[str]], str | None]:
    """The run in ``run_dir`` against its same-seed baselines at each acquired %: its method name, the
    table's columns and cells (test accuracy in %, then the run minus each baseline in points) and the
    line on the pool-based reference (:func:`ceiling_line`)."""
    frame = collect_metrics(run_dir)
    pivot = frame.pivot_table(index="acquired_pct", columns="strategy", values="accuracy")
    main = str(frame[frame["run"] == run_dir.name]["strategy"].iloc[0])
    others = [c for c in pivot.columns if c != main]
    columns = ["acquired", main, *others, *[f"{main} - {o}" for o in others]]
    rows = []
    for pct, row in pivot.iterrows():
        cells = [f"{pct:g} %", *[("-" if pd.isna(row[c]) else f"{100 * row[c]:.1f}") for c in [main, *others]]]
        cells += ["-" if pd.isna(row[main]) or pd.isna(row[o]) else f"{100 * (row[main] - row[o]):+.1f}"
                  for o in others]
        rows.append(cells)
    return main, [str(c) for c in columns], rows, ceiling_line(frame, main)


def ceiling_line(frame: pd.DataFrame, main: str) -> str | None:
    """The pool-based reference (the best point of any pool-based mean curve), the pool-based mean
    at 100 % of the pool, and where ``main`` got past the pool against the reference."""
    reference = pool_reference(frame)
    if reference is None:
        return None
    text = (f"pool-based reference (best point of a pool-based curve): {reference.strategy} at {reference.pct:g} %: "
            f"{100 * reference.value:.1f}")
    if reference.mean_at_full is not None:
        text += f"; pool-based mean at 100 %: {100 * reference.mean_at_full:.1f}"
    means = frame.groupby(["strategy", "acquired_pct"], as_index=False)["accuracy"].mean()
    beyond = means[(means["strategy"] == main) & (means["acquired_pct"] > 100.0 + 1e-6)].sort_values("acquired_pct")
    for _, row in beyond.iterrows():
        text += (f"; {main} at {row['acquired_pct']:g} %: {100 * row['accuracy']:.1f} "
                 f"({100 * (row['accuracy'] - reference.value):+.1f} points)")
    return text


def closing_summary(metrics: Sequence[dict], runs_dir: Path | None, test_rows: int | None = None) -> list[str]:
    """The run's closing summary in plain words (:func:`signal_al.experiments.summary.plain_summary`)
    against its same-seed baselines and the pool-based reference found in ``runs_dir`` (None: no baselines)."""
    baselines, reference = [], None
    if runs_dir is not None:
        frame = collect_metrics(runs_dir)
        main = metrics[0]["strategy"] if metrics else None
        baselines = frame[frame["strategy"] != main].to_dict("records")
        found = pool_reference(frame)
        if found is not None:
            reference = (found.strategy, found.pct, found.value)
    return plain_summary(metrics, baselines, reference, test_rows=test_rows)
