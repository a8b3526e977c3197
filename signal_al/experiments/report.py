"""Aggregate runs (methods × seeds) into a results table and the accuracy-vs-acquired plot.

Reads only each run's ``metrics.jsonl``, so ``signal-al report`` regenerates everything from run
folders or from the raw records exported from them (:mod:`signal_al.experiments.raw_records`)
alike. What leads a results page (the pool-based reference and the primary endpoints) is
defined in :mod:`signal_al.experiments.endpoints`; the per-step tables follow as secondary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from signal_al.core.io_utils import atomic_write_text, json_object_lines
from signal_al.core.run_layout import METRICS_FILE
from signal_al.engine.methods import in_signal_family
from signal_al.experiments.endpoints import (Endpoint, PoolReference, endpoints_frame, endpoints_markdown,
                                             pool_reference, primary_endpoints, reference_markdown)

METRICS = ("accuracy", "macro_f1")
#: Per-round generator statistics of SIGnAL runs (columns of metrics.jsonl, plus derived shares).
GENERATOR_STATS = ("reward_mean", "heldout_gain_pct", "kl_new_base", "distinct_2", "dropped_fraction",
                   "synthetic_selected_share", "synthetic_labeled_share")


#: Keys every metrics row of a run has; a metrics.jsonl without them was not written by a run.
REQUIRED_KEYS = ("round", "strategy", "seed", "acquired_pct", *METRICS)


def _metrics_rows(path: Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``; anything else is a one-line error naming the file and line."""
    from signal_al.core.errors import DataError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a signal-al metrics file (not UTF-8 text: {exc.reason})") from None
    rows = []
    for number, row in json_object_lines(lines, path, problem=lambda what: f"not a signal-al metrics file ({what})"):
        missing = [key for key in REQUIRED_KEYS if key not in row]
        if missing:
            raise DataError(f"{path}:{number}: not a signal-al metrics file (no {', '.join(missing)})")
        bad = [key for key in ("acquired_pct", *METRICS) if not _is_number(row[key])]
        if bad:
            raise DataError(f"{path}:{number}: {', '.join(bad)} must be numbers")
        rows.append(row)
    return rows


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def root_labels(roots: Sequence[Path]) -> list[str]:
    """Names that tell several report roots apart: the last parts of their paths, as few as make
    every name unique (``runs/a/x`` and ``runs/b/x`` are ``a/x`` and ``b/x``).

    >>> root_labels([Path("/r/pool/grid"), Path("/r/signal/grid")]), root_labels([Path("/r/a"), Path("/r/b")])
    (['pool/grid', 'signal/grid'], ['a', 'b'])
    """
    from signal_al.core.errors import UserError

    parts = [Path(root).resolve().parts for root in roots]
    if len(set(parts)) < len(parts):
        raise UserError(f"{', '.join(str(r) for r in roots)}: a folder is listed twice")
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    raise UserError(f"{', '.join(str(r) for r in roots)}: folders nested in each other cannot be told apart")


def run_folders(root: Path | Sequence[Path]) -> list[tuple[str, Path]]:
    """(name, folder) of every run folder (one holding ``metrics.jsonl``) under ``root``, at any
    depth. A run's name is its path below the root (the root's own name when the root is the run);
    with several roots it starts with the root's label (see :func:`root_labels`). A folder of raw
    records exported with these names (:mod:`signal_al.experiments.raw_records`) gives the same names
    back, so a report regenerated from it is the same report."""
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    labels: list[str | None] = list(root_labels(roots)) if len(roots) > 1 else [None]
    found = []
    for top, label in zip(roots, labels):
        for metrics_file in sorted(top.rglob(METRICS_FILE)):
            folder = metrics_file.parent
            relative = folder.relative_to(top).as_posix() if folder != top else ""
            if label is None:
                found.append((relative or top.resolve().name, folder))
            else:
                found.append((f"{label}/{relative}" if relative else label, folder))
    return found


def collect_metrics(root: Path | Sequence[Path]) -> pd.DataFrame:
    """One row per (run, round) found under ``root`` (any depth; several roots are combined, see
    :func:`run_folders` for the run names), with method and seed.

    ``acquired_pct`` is the round's nominal grid point (``target_pct``, 10 / 20 / ... %) so
    that seeds line up; ``acquired_pct_exact`` keeps the measured share of the pool.
    """
    frames = []
    for name, folder in run_folders(root):
        rows = _metrics_rows(folder / METRICS_FILE)
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        frame["run"] = name
        if "n_labeled" in frame:
            frame["acquired_this_round"] = frame["n_labeled"].diff().fillna(frame["n_labeled"])
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


def generator_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of each generator statistic per SIGnAL-family strategy and acquired %:
    SIGnAL reward of the kept candidates, KL to the base model after the update, distinct-2,
    dropped share, the share of the round's picks that were synthetic and of all labels so far."""
    rows = frame[frame["strategy"].map(in_signal_family).astype(bool)].copy()
    if rows.empty or "n_synthetic_selected" not in rows:
        return pd.DataFrame()
    rows["synthetic_selected_share"] = rows["n_synthetic_selected"] / rows["acquired_this_round"].where(
        rows["acquired_this_round"] > 0)
    rows["synthetic_labeled_share"] = rows["n_synthetic"] / rows["n_labeled"]
    rows = rows[rows["round"] >= 1]
    stats = [c for c in GENERATOR_STATS if c in rows]
    table = rows.groupby(["strategy", "acquired_pct"])[stats].mean()
    table["seeds"] = rows.groupby(["strategy", "acquired_pct"])["seed"].nunique()
    return table.reset_index()


def generator_markdown(table: pd.DataFrame) -> str:
    """One table per strategy: acquired % as rows, the generator statistics as columns."""
    parts = []
    for strategy, rows in table.groupby("strategy"):
        stats = [c for c in GENERATOR_STATS if c in rows]
        lines = [f"### {strategy}", "", "| acquired % | seeds | " + " | ".join(stats) + " |",
                 "|" + " --- |" * (len(stats) + 2)]
        for _, row in rows.sort_values("acquired_pct").iterrows():
            cells = ["-" if pd.isna(row[c]) else f"{row[c]:.3g}" for c in stats]
            lines.append(f"| {row['acquired_pct']:g} | {int(row['seeds'])} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def plot_generator_stats(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """The generator statistics vs acquired %, one panel each, one line per SIGnAL-family strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = [c for c in GENERATOR_STATS if c in table]
    figure, axes = plt.subplots(2, 3, figsize=(12, 6.5), dpi=110)
    for axis, stat in zip(axes.flat, stats):
        for strategy, rows in table.groupby("strategy"):
            rows = rows.sort_values("acquired_pct")
            axis.plot(rows["acquired_pct"], rows[stat], marker="o", markersize=2.5, label=strategy)
        axis.set_title(stat.replace("_", " "), fontsize=10)
        axis.set_xlabel("labels acquired (% of the real pool)", fontsize=8)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(stats):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title or "SIGnAL generator statistics per round (mean over seeds)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def _grid_markdown(rows: list, columns: list, cell) -> str:
    """Strategies as rows, acquired % as columns, ``cell(strategy, column)`` as text."""
    lines = ["| strategy | " + " | ".join(f"{c:g} %" for c in columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for strategy in rows:
        lines.append(f"| {strategy} | " + " | ".join(cell(strategy, c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: float, spread: float, seeds: float, spec: str) -> str:
    """``value ± spread (seeds)`` in points; one seed shows no ± (its std is undefined, not 0).

    >>> _cell(0.7125, 0.0125, 2, ".1f"), _cell(0.8125, float("nan"), 1, "+.1f"), _cell(float("nan"), 0.0, 0, ".1f")
    ('71.2 ± 1.2 (2)', '+81.2 (1)', '-')
    """
    if pd.isna(value):
        return "-"
    text = f"{100 * value:{spec}}"
    if not pd.isna(spread) and seeds > 1:
        text += f" ± {100 * spread:.1f}"
    return f"{text} ({int(seeds)})"


def markdown_table(table: pd.DataFrame, metric: str = "accuracy") -> str:
    """Strategies as rows, acquired % as columns, cells ``mean ± std (seeds)`` in % (just the mean
    and its seed count where one seed got there)."""
    mean = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_mean")
    std = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_std")
    count = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_count")
    return _grid_markdown(list(mean.index), list(mean.columns),
                          lambda s, c: _cell(mean.loc[s, c], std.loc[s, c], count.loc[s, c], ".1f"))


def paired_gain(frame: pd.DataFrame, metric: str = "accuracy", baseline: str = "random") -> pd.DataFrame:
    """Mean and std over seeds of (strategy - baseline) at the same seed and acquired %, only where
    both ran that seed (so a strategy with fewer seeds is compared with the baseline's same seeds).

    >>> frame = pd.DataFrame({"strategy": ["random", "random", "a", "a"], "seed": [0, 1, 0, 1],
    ...                       "acquired_pct": [10.0] * 4, "accuracy": [0.5, 0.6, 0.7, 0.6]})
    >>> row = paired_gain(frame).iloc[0]
    >>> round(float(row["gain"]), 6), round(float(row["gain_std"]), 6), int(row["seeds"])
    (0.1, 0.141421, 2)
    """
    keys = ["seed", "acquired_pct"]
    empty = pd.DataFrame(columns=["strategy", "acquired_pct", "gain", "gain_std", "seeds"])
    base = frame[frame["strategy"] == baseline].groupby(keys)[metric].mean().rename("base")
    if base.empty:
        return empty
    rows = frame[frame["strategy"] != baseline].groupby(["strategy", *keys])[metric].mean().reset_index()
    if rows.empty:  # only the baseline ran: no gain to show
        return empty
    return _mean_gain(rows.join(base, on=keys, how="inner"), metric)


def _mean_gain(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std and seed count over seeds of ``metric - base`` per strategy and acquired %."""
    rows = rows.assign(gain=rows[metric] - rows["base"])
    return rows.groupby(["strategy", "acquired_pct"]).agg(gain=("gain", "mean"), gain_std=("gain", "std"),
                                                          seeds=("seed", "nunique")).reset_index()


def gain_markdown(gains: pd.DataFrame) -> str:
    """Strategies as rows, acquired % as columns, cells the paired gain in points ``± std (seeds)``."""
    gain = gains.pivot(index="strategy", columns="acquired_pct", values="gain")
    spread = gains.pivot(index="strategy", columns="acquired_pct", values="gain_std")
    seeds = gains.pivot(index="strategy", columns="acquired_pct", values="seeds")
    return _grid_markdown(list(gain.index), list(gain.columns),
                          lambda s, c: _cell(gain.loc[s, c], spread.loc[s, c], seeds.loc[s, c], "+.1f"))


#: Strong, distinct colours: SIGnAL's family first, then the pool-based methods (no pale tints).
SIGNAL_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
POOL_COLOURS = ("#1f77b4", "#2ca02c", "#7f7f7f", "#17becf", "#bcbd22", "#000080", "#006400", "#8b008b",
                "#b8860b", "#4682b4")


def strategy_colours(strategies: Sequence[str]) -> dict[str, str]:
    """One colour per strategy, SIGnAL's family in warm colours and pool-based methods in cool ones,
    the same for a strategy whatever else is plotted (``random`` is always blue).

    >>> strategy_colours(["random", "entropy", "signal"])
    {'random': '#1f77b4', 'entropy': '#2ca02c', 'signal': '#d62728'}
    """
    ours = [s for s in strategies if in_signal_family(s)]
    pool = sorted((s for s in strategies if not in_signal_family(s)), key=lambda s: (s != "random", str(s)))
    colours = {s: POOL_COLOURS[i % len(POOL_COLOURS)] for i, s in enumerate(pool)}
    colours.update({s: SIGNAL_COLOURS[i % len(SIGNAL_COLOURS)] for i, s in enumerate(sorted(ours, key=str))})
    return {s: colours[s] for s in strategies}


def beyond_pool_gain(frame: pd.DataFrame, reference: PoolReference | None,
                     metric: str = "accuracy") -> pd.DataFrame:
    """How far each SIGnAL-family strategy gets from 100 % of the real pool on, against the
    pool-based reference (:func:`~signal_al.experiments.endpoints.pool_reference`) in the same seed:
    mean and std over seeds of the per-seed difference at each acquired % >= 100, paired on the
    seeds both have. Empty without a reference.

    >>> frame = pd.DataFrame({"strategy": ["random", "random", "random", "signal", "signal", "signal"],
    ...                       "seed": [0, 1, 0, 0, 1, 0], "acquired_pct": [50.0, 50.0, 100.0, 100.0, 100.0, 150.0],
    ...                       "accuracy": [0.70, 0.72, 0.60, 0.71, 0.75, 0.76]})
    >>> gains = beyond_pool_gain(frame, pool_reference(frame))
    >>> [(float(r.acquired_pct), round(float(r.gain), 4), int(r.seeds)) for r in gains.itertuples()]
    [(100.0, 0.02, 2), (150.0, 0.06, 1)]
    """
    if reference is None:
        return pd.DataFrame(columns=["strategy", "acquired_pct", "gain", "gain_std", "seeds"])
    ours = frame["strategy"].map(in_signal_family).astype(bool)
    rows = frame[ours & (frame["acquired_pct"] >= 100.0 - 1e-6)]
    rows = rows.groupby(["strategy", "seed", "acquired_pct"])[metric].mean().reset_index()
    base = pd.Series(reference.per_seed, name="base", dtype="float64")
    base.index.name = "seed"
    return _mean_gain(rows.join(base, on="seed", how="inner"), metric)


def _line_style(strategy: object) -> dict:
    """SIGnAL's family thick and solid, pool-based methods thin and dashed."""
    return {"linewidth": 2.4, "zorder": 5} if in_signal_family(strategy) else {"linewidth": 1.2, "linestyle": "--",
                                                                              "alpha": 0.85}


def _plot_gains(axis, gains: pd.DataFrame, colours: dict, skip: str | None = None) -> None:
    """Each strategy's paired gain (points) with a ±std band, and the zero line."""
    for strategy, colour in colours.items():
        gap = gains[gains["strategy"] == strategy].sort_values("acquired_pct")
        if strategy == skip or gap.empty:
            continue
        spread = 100 * gap["gain_std"].astype(float).fillna(0.0)
        axis.plot(gap["acquired_pct"], 100 * gap["gain"], marker="o", markersize=3, label=strategy, color=colour,
                  **_line_style(strategy))
        axis.fill_between(gap["acquired_pct"], 100 * gap["gain"] - spread, 100 * gap["gain"] + spread,
                          alpha=0.15 if in_signal_family(strategy) else 0.05, color=colour)
    axis.axhline(0.0, color="grey", linewidth=1)


def _draw_reference(axis, reference: PoolReference, past_the_pool: bool) -> None:
    """The pool-based reference (dotted) and the pool-based mean at 100 % (dash-dot) as levels."""
    axis.axhline(100 * reference.value, color="black", linewidth=1.0, linestyle=":",
                 label=f"pool-based reference: best mean point ({reference.strategy} at {reference.pct:g} %)")
    if reference.mean_at_full is not None:
        axis.axhline(100 * reference.mean_at_full, color="dimgrey", linewidth=1.0, linestyle="-.",
                     label=f"pool-based mean at 100 % ({reference.methods_at_full} methods)")
    if past_the_pool:
        axis.axvline(100.0, color="black", linewidth=0.8, linestyle=":")


def plot_curves(table: pd.DataFrame, path: Path, metric: str = "accuracy", title: str = "",
                gains: pd.DataFrame | None = None, baseline: str = "random",
                past: pd.DataFrame | None = None, reference: PoolReference | None = None) -> Path:
    """Metric vs acquired % of the real pool, one line and a ±std band per strategy (SIGnAL's
    family thick and solid, pool-based methods thin and dashed), with the pool-based reference and
    the pool-based mean at 100 % as levels; with ``gains`` (see :func:`paired_gain`) a panel shows
    each strategy's paired gain over ``baseline``, and with ``past`` (see :func:`beyond_pool_gain`)
    one shows SIGnAL's family past 100 % against the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = sorted(table["strategy"].unique(), key=lambda s: (in_signal_family(s), str(s)))
    with_gains = gains is not None and not gains.empty
    with_past = reference is not None and past is not None and bool((past["acquired_pct"] > 100.0 + 1e-6).any())
    panels = 1 + with_gains + with_past
    figure, axes = plt.subplots(1, panels, figsize=(7.5 * panels, 4.8), dpi=120, squeeze=False)
    colours = strategy_colours(strategies)
    for strategy in strategies:
        rows = table[table["strategy"] == strategy].sort_values("acquired_pct")
        mean = 100 * rows[f"{metric}_mean"]
        std = 100 * rows[f"{metric}_std"].fillna(0.0)
        colour = colours[strategy]
        axes[0, 0].plot(rows["acquired_pct"], mean, marker="o", markersize=3, label=strategy, color=colour,
                        **_line_style(strategy))
        axes[0, 0].fill_between(rows["acquired_pct"], mean - std, mean + std,
                                alpha=0.15 if in_signal_family(strategy) else 0.05, color=colour)
    if reference is not None:
        _draw_reference(axes[0, 0], reference, bool(table["acquired_pct"].max() > 100.0 + 1e-6))
    label = metric.replace("_", "-")
    seeds = table["seeds"] if "seeds" in table else table[f"{metric}_count"]
    over = "mean ± std over seeds" if int(seeds.max()) > 1 else "one seed"
    axes[0, 0].set_ylabel(f"test {label} (%)")
    axes[0, 0].set_title(title or f"test {metric} vs acquired labels ({over})", fontsize=10)
    if with_gains:
        _plot_gains(axes[0, 1], gains, colours, skip=baseline)
        axes[0, 1].set_ylabel(f"{label} minus {baseline}'s (points)")
        axes[0, 1].set_title(f"gain over {baseline} (same seed and %, {over})", fontsize=10)
    if with_past:
        axis = axes[0, panels - 1]
        _plot_gains(axis, past, colours)
        axis.set_ylabel(f"{label} minus the pool-based reference (points)")
        axis.set_title(f"past the pool: minus the pool-based reference ({reference.strategy} at {reference.pct:g} %), "
                       "same seed", fontsize=10)
        axis.legend(fontsize=7)
    for axis in axes.flat:
        axis.set_xlabel("labels acquired (% of the real pool)")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


#: What the per-step tables of results.md are, against the primary endpoints above them.
SECONDARY = "secondary: per step, not corrected for the number of steps"


def results_markdown(frame: pd.DataFrame, baseline: str = "random", endpoints: list[Endpoint] | None = None) -> str:
    """results.md: the pool-based reference, the primary endpoints (computed unless given), then the
    per-step tables (secondary)."""
    parts = []
    reference = pool_reference(frame, "accuracy")
    if reference is not None:
        parts.append("## Pool-based reference\n\n" + reference_markdown(reference))
    if endpoints is None:
        endpoints = primary_endpoints(frame, "accuracy")
    parts.append("## Primary endpoints (accuracy, points; fixed in advance)\n\n" + (
        endpoints_markdown(endpoints) if endpoints else
        "None measured: they need `signal` with `signal-frozen`, with pool-based runs, or past 100 % of the pool.\n"))
    table = summary_table(frame)
    for metric in METRICS:
        parts.append(f"## {metric} at each step ({SECONDARY})\n\n%, mean ± std over seeds (seed count)\n\n"
                     + markdown_table(table, metric))
    gains = paired_gain(frame, "accuracy", baseline)
    if not gains.empty:
        parts.append(f"## accuracy gain over {baseline} at each step ({SECONDARY})\n\npoints; same seed and %, "
                     "mean ± std over the seeds both ran (their count)\n\n" + gain_markdown(gains))
    past = beyond_pool_gain(frame, reference, "accuracy")
    if not past.empty:
        parts.append(f"## accuracy past the pool at each step ({SECONDARY})\n\nSIGnAL's family minus the pool-based "
                     f"reference ({reference.strategy} at {reference.pct:g} %) in the same seed; points, mean ± std "
                     "over the seeds both have (their count)\n\n" + gain_markdown(past))
    return "\n".join(parts)


def write_report(root: Path | Sequence[Path], out_dir: Path | None = None, title: str = "",
                 baseline: str = "random") -> dict[str, Path]:
    """results.md (pool-based reference, primary endpoints, per-step tables), results.csv,
    endpoints.csv and accuracy.png (and macro_f1.png) for the runs under ``root`` (one folder or
    several), plus generator_stats.csv/.md/.png when SIGnAL runs are among them. Gains are paired
    with ``baseline`` (same seed and acquired %).

    Every file is first written to a staging folder and moved into place only when all of them
    were made, so a failing report leaves the previous one whole.
    """
    import shutil
    import tempfile

    from signal_al.core.errors import UserError

    if out_dir is None:
        if not isinstance(root, (str, Path)):
            raise ValueError("several roots need an out_dir")
        out_dir = Path(root)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: is a file, not a folder to write the report into")
    frame = collect_metrics(root)
    if frame.empty:
        found = sorted(path for top in ([root] if isinstance(root, (str, Path)) else root)
                       for path in Path(top).rglob(METRICS_FILE))
        if found:  # every metrics.jsonl there is empty: runs that have not finished a round
            more = f" (and so are the {len(found) - 1} other metrics.jsonl found)" if len(found) > 1 else ""
            raise UserError(f"{found[0]}: empty: no round recorded{more}; a run that has finished rounds gets it "
                            f"back from its state.json with `signal-al resume {found[0].parent}`")
        raise UserError(f"{root}: no metrics.jsonl found in any run folder")
    if baseline not in set(frame["strategy"]) and baseline != "random":
        raise UserError(f"--baseline {baseline}: no such strategy among the runs "
                        f"({', '.join(sorted(frame['strategy'].unique()))})")
    table = summary_table(frame)
    endpoints = primary_endpoints(frame, "accuracy")
    text = results_markdown(frame, baseline, endpoints)
    generator = generator_summary(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report-staging-"))
    try:
        atomic_write_text(staging / "results.csv", table.to_csv(index=False))
        atomic_write_text(staging / "results.md", text)
        names = {"csv": "results.csv", "markdown": "results.md"}
        if endpoints:
            atomic_write_text(staging / "endpoints.csv", endpoints_frame(endpoints).to_csv(index=False))
            names["endpoints"] = "endpoints.csv"
        for metric in METRICS:
            reference = pool_reference(frame, metric)
            plot_curves(table, staging / f"{metric}.png", metric, title, paired_gain(frame, metric, baseline), baseline,
                        beyond_pool_gain(frame, reference, metric), reference)
            names[metric] = f"{metric}.png"
        if not generator.empty:
            atomic_write_text(staging / "generator_stats.csv", generator.to_csv(index=False))
            atomic_write_text(staging / "generator_stats.md", generator_markdown(generator))
            plot_generator_stats(generator, staging / "generator_stats.png")
            names["generator_stats"] = "generator_stats.png"
        runs = json.dumps(sorted(frame["run"].unique().tolist()), indent=2) + "\n"
        atomic_write_text(staging / "runs.json", runs)
        for made in sorted(staging.iterdir()):
            os.replace(made, out_dir / made.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {kind: out_dir / name for kind, name in names.items()}
