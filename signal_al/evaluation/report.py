"""Aggregate runs (methods × seeds) into a results table and the accuracy-vs-acquired plot.

Reads only what runs persisted (``metrics.jsonl`` and ``config.yaml`` of each run folder),
so ``signal-al report`` can regenerate everything from saved runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from signal_al.io_utils import atomic_write_text, read_jsonl

METRICS = ("accuracy", "macro_f1")


def collect_metrics(root: Path) -> pd.DataFrame:
    """One row per (run, round) found under ``root`` (any depth), with method and seed.

    ``acquired_pct`` is the round's nominal grid point (``target_pct``, 10 / 20 / ... %) so
    that seeds line up; ``acquired_pct_exact`` keeps the measured share of the pool.
    """
    frames = []
    for metrics_file in sorted(root.rglob("metrics.jsonl")):
        rows = read_jsonl(metrics_file)
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        frame["run"] = str(metrics_file.parent.relative_to(root)) if metrics_file.parent != root else root.name
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "strategy", "seed", "acquired_pct", *METRICS])
    frame = pd.concat(frames, ignore_index=True)
    frame["acquired_pct_exact"] = frame["acquired_pct"]
    if "target_pct" in frame:  # group on the nominal grid point; the exact share is within half an item of it
        frame["acquired_pct"] = frame["target_pct"].fillna(frame["acquired_pct"])
    frame["acquired_pct"] = frame["acquired_pct"].round(1)
    return frame


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and seed count of each metric per strategy and acquired %."""
    grouped = frame.groupby(["strategy", "acquired_pct"])[list(METRICS)]
    table = grouped.agg(["mean", "std", "count"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    return table.reset_index()


def markdown_table(table: pd.DataFrame, metric: str = "accuracy") -> str:
    """Strategies as rows, acquired % as columns, cells ``mean ± std`` (in %)."""
    pivot_mean = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_mean")
    pivot_std = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_std").fillna(0.0)
    seeds = table.groupby("strategy")[f"{metric}_count"].max()
    columns = list(pivot_mean.columns)
    header = "| strategy (seeds) | " + " | ".join(f"{c:g} %" for c in columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    for strategy in pivot_mean.index:
        cells = []
        for column in columns:
            mean = pivot_mean.loc[strategy, column]
            cells.append("-" if pd.isna(mean) else f"{100 * mean:.1f} ± {100 * pivot_std.loc[strategy, column]:.1f}")
        lines.append(f"| {strategy} ({int(seeds[strategy])}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(table: pd.DataFrame, path: Path, metric: str = "accuracy", title: str = "") -> Path:
    """Metric vs acquired % of the real pool, one line and a ±std band per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for strategy, rows in table.groupby("strategy"):
        rows = rows.sort_values("acquired_pct")
        mean = 100 * rows[f"{metric}_mean"]
        std = 100 * rows[f"{metric}_std"].fillna(0.0)
        style = {"linewidth": 2.4, "zorder": 5} if str(strategy).startswith("signal") else {"linewidth": 1.4}
        axes.plot(rows["acquired_pct"], mean, marker="o", markersize=3, label=strategy, **style)
        axes.fill_between(rows["acquired_pct"], mean - std, mean + std, alpha=0.15)
    axes.set_xlabel("labels acquired (% of the real pool)")
    axes.set_ylabel(f"test {metric.replace('_', '-')} (%)")
    axes.set_title(title or f"test {metric} vs acquired labels (mean ± std over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(root: Path, out_dir: Path | None = None, title: str = "") -> dict[str, Path]:
    """results.csv, results.md and accuracy.png (and macro_f1.png) for the runs under ``root``."""
    out_dir = out_dir or root
    frame = collect_metrics(root)
    if frame.empty:
        from signal_al.errors import UserError

        raise UserError(f"{root}: no metrics.jsonl found in any run folder")
    table = summary_table(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.csv", table.to_csv(index=False))
    text = "\n".join(f"## {metric}\n\n{markdown_table(table, metric)}" for metric in METRICS)
    atomic_write_text(out_dir / "results.md", text)
    paths = {"csv": out_dir / "results.csv", "markdown": out_dir / "results.md"}
    for metric in METRICS:
        paths[metric] = plot_curves(table, out_dir / f"{metric}.png", metric, title)
    atomic_write_text(out_dir / "runs.json", json.dumps(sorted(frame["run"].unique().tolist()), indent=2) + "\n")
    return paths
