"""Aggregate runs (methods × seeds) into a results table and the accuracy-vs-acquired plot.

Reads only what runs persisted (``metrics.jsonl`` and ``config.yaml`` of each run folder),
so ``signal-al report`` can regenerate everything from saved runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from signal_al.io_utils import atomic_write_text, json_object_lines
from signal_al.methods import in_signal_family
from signal_al.run_layout import METRICS_FILE

METRICS = ("accuracy", "macro_f1")
#: Per-round generator statistics of SIGnAL runs (columns of metrics.jsonl, plus derived shares).
GENERATOR_STATS = ("reward_mean", "heldout_lift_pct", "kl", "distinct_2", "dropped_fraction",
                   "synthetic_selected_share", "synthetic_labeled_share")


#: Keys every metrics row of a run has; a metrics.jsonl without them was not written by a run.
REQUIRED_KEYS = ("round", "strategy", "seed", "acquired_pct", *METRICS)


def _metrics_rows(path: Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``; anything else is a one-line error naming the file and line."""
    from signal_al.errors import DataError

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


def collect_metrics(root: Path | Sequence[Path]) -> pd.DataFrame:
    """One row per (run, round) found under ``root`` (any depth; several roots are combined,
    their run names prefixed with the root's name), with method and seed.

    ``acquired_pct`` is the round's nominal grid point (``target_pct``, 10 / 20 / ... %) so
    that seeds line up; ``acquired_pct_exact`` keeps the measured share of the pool.
    """
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    frames = []
    for top in roots:
        for metrics_file in sorted(top.rglob(METRICS_FILE)):
            rows = _metrics_rows(metrics_file)
            if not rows:
                continue
            frame = pd.DataFrame(rows)
            name = str(metrics_file.parent.relative_to(top)) if metrics_file.parent != top else top.name
            frame["run"] = name if len(roots) == 1 else f"{top.name}/{name}"
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


def _grid_markdown(rows: list, columns: list, seeds: pd.Series, cell) -> str:
    """Strategies as rows, acquired % as columns, ``cell(strategy, column)`` as text."""
    lines = ["| strategy (seeds) | " + " | ".join(f"{c:g} %" for c in columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for strategy in rows:
        lines.append(f"| {strategy} ({int(seeds[strategy])}) | " + " | ".join(cell(strategy, c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(table: pd.DataFrame, metric: str = "accuracy") -> str:
    """Strategies as rows, acquired % as columns, cells ``mean ± std`` (in %; just the mean where one
    seed got there, whose std is undefined rather than 0)."""
    mean = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_mean")
    std = table.pivot(index="strategy", columns="acquired_pct", values=f"{metric}_std")
    seeds = table.groupby("strategy")[f"{metric}_count"].max()

    def cell(s: str, c: float) -> str:
        if pd.isna(mean.loc[s, c]):
            return "-"
        return f"{100 * mean.loc[s, c]:.1f}" + ("" if pd.isna(std.loc[s, c]) else f" ± {100 * std.loc[s, c]:.1f}")

    return _grid_markdown(list(mean.index), list(mean.columns), seeds, cell)


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
    """Strategies as rows, acquired % as columns, cells the paired gain in points (± its std over seeds)."""
    gain = gains.pivot(index="strategy", columns="acquired_pct", values="gain")
    spread = gains.pivot(index="strategy", columns="acquired_pct", values="gain_std")
    seeds = gains.groupby("strategy")["seeds"].max()

    def cell(s: str, c: float) -> str:
        if pd.isna(gain.loc[s, c]):
            return "-"
        return f"{100 * gain.loc[s, c]:+.1f}" + ("" if pd.isna(spread.loc[s, c]) else f" ± {100 * spread.loc[s, c]:.1f}")

    return _grid_markdown(list(gain.index), list(gain.columns), seeds, cell)


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


def pool_ceiling(table: pd.DataFrame, metric: str = "accuracy") -> tuple[str, float] | None:
    """(strategy, mean ``metric``) of the best pool-based strategy at 100 % of the real pool, the
    most any pool-based method can reach; None when no pool-based strategy got there.

    >>> t = pd.DataFrame({"strategy": ["random", "cal", "cal", "signal"], "acquired_pct": [100.0, 50.0, 100.0, 100.0],
    ...                   "accuracy_mean": [0.7, 0.6, 0.72, 0.9]})
    >>> pool_ceiling(t)
    ('cal', 0.72)
    """
    at_full = table[(~table["strategy"].map(in_signal_family).astype(bool))
                    & ((table["acquired_pct"] - 100.0).abs() < 1e-6)]
    if at_full.empty:
        return None
    best = at_full.loc[at_full[f"{metric}_mean"].idxmax()]
    return str(best["strategy"]), float(best[f"{metric}_mean"])


def beyond_pool_gain(frame: pd.DataFrame, metric: str = "accuracy") -> tuple[str, pd.DataFrame] | None:
    """How far each SIGnAL-family strategy gets from 100 % of the real pool on, against the best
    pool-based strategy at 100 % (the most any pool-based method can reach; chosen by its mean
    over seeds): (that strategy, mean and std over seeds of the per-seed difference at each
    acquired % >= 100, paired on the seeds both ran). None when no pool-based strategy reached 100 %.

    >>> frame = pd.DataFrame({"strategy": ["random", "random", "cal", "cal", "signal", "signal", "signal"],
    ...                       "seed": [0, 1, 0, 1, 0, 1, 0], "acquired_pct": [100.0] * 6 + [150.0],
    ...                       "accuracy": [0.70, 0.72, 0.60, 0.62, 0.71, 0.75, 0.76]})
    >>> best, gains = beyond_pool_gain(frame)
    >>> best, [(float(r.acquired_pct), round(float(r.gain), 4), int(r.seeds)) for r in gains.itertuples()]
    ('random', [(100.0, 0.02, 2), (150.0, 0.06, 1)])
    """
    ours = frame["strategy"].map(in_signal_family).astype(bool)
    pool_at_full = frame[~ours & ((frame["acquired_pct"] - 100.0).abs() < 1e-6)]
    if pool_at_full.empty:
        return None
    per_seed = pool_at_full.groupby(["strategy", "seed"])[metric].mean()
    best = str(per_seed.groupby("strategy").mean().idxmax())
    base = per_seed.loc[best].rename("base")
    rows = frame[ours & (frame["acquired_pct"] >= 100.0 - 1e-6)]
    rows = rows.groupby(["strategy", "seed", "acquired_pct"])[metric].mean().reset_index()
    return best, _mean_gain(rows.join(base, on="seed", how="inner"), metric)


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


def plot_curves(table: pd.DataFrame, path: Path, metric: str = "accuracy", title: str = "",
                gains: pd.DataFrame | None = None, baseline: str = "random",
                past: tuple[str, pd.DataFrame] | None = None) -> Path:
    """Metric vs acquired % of the real pool, one line and a ±std band per strategy (SIGnAL's
    family thick and solid, pool-based methods thin and dashed); with ``gains`` (see
    :func:`paired_gain`) a panel shows each strategy's paired gain over ``baseline``, and with
    ``past`` (see :func:`beyond_pool_gain`) one shows SIGnAL's family past 100 % against the
    best pool-based method at 100 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = sorted(table["strategy"].unique(), key=lambda s: (in_signal_family(s), str(s)))
    with_gains = gains is not None and not gains.empty
    with_past = past is not None and bool((past[1]["acquired_pct"] > 100.0 + 1e-6).any())
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
    ceiling = pool_ceiling(table, metric)
    if ceiling is not None and table["acquired_pct"].max() > 100.0 + 1e-6:
        strategy, value = ceiling
        axes[0, 0].axvline(100.0, color="black", linewidth=0.8, linestyle=":")
        axes[0, 0].axhline(100 * value, color="black", linewidth=1.0, linestyle=":",
                           label=f"pool ceiling ({strategy} at 100 %)")
    label = metric.replace("_", "-")
    axes[0, 0].set_ylabel(f"test {label} (%)")
    axes[0, 0].set_title(title or f"test {metric} vs acquired labels (mean ± std over seeds)", fontsize=10)
    if with_gains:
        _plot_gains(axes[0, 1], gains, colours, skip=baseline)
        axes[0, 1].set_ylabel(f"{label} minus {baseline}'s (points)")
        axes[0, 1].set_title(f"gain over {baseline} (same seed and %, mean ± std over seeds)", fontsize=10)
    if with_past:
        best, past_gains = past
        axis = axes[0, panels - 1]
        _plot_gains(axis, past_gains, colours)
        axis.set_ylabel(f"{label} minus {best}'s at 100 % (points)")
        axis.set_title(f"past the pool: gain over {best} at 100 % (same seed, mean ± std over seeds)", fontsize=10)
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


def write_report(root: Path | Sequence[Path], out_dir: Path | None = None, title: str = "",
                 baseline: str = "random") -> dict[str, Path]:
    """results.csv, results.md and accuracy.png (and macro_f1.png) for the runs under ``root``
    (one folder or several), plus generator_stats.csv/.md/.png when SIGnAL runs are among them.
    Gains are paired with ``baseline`` (same seed and acquired %).

    Every file is first written to a staging folder and moved into place only when all of them
    were made, so a failing report leaves the previous one whole.
    """
    import shutil
    import tempfile

    from signal_al.errors import UserError

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
    table = summary_table(frame)
    text = "\n".join(f"## {metric}\n\n{markdown_table(table, metric)}" for metric in METRICS)
    if baseline not in set(frame["strategy"]) and baseline != "random":
        raise UserError(f"--baseline {baseline}: no such strategy among the runs "
                        f"({', '.join(sorted(frame['strategy'].unique()))})")
    gains = paired_gain(frame, "accuracy", baseline)
    if not gains.empty:
        text += (f"\n## accuracy gain over {baseline} (points; same seed and %, mean ± std over the seeds both "
                 "ran)\n\n" + gain_markdown(gains))
    beyond = beyond_pool_gain(frame, "accuracy")
    if beyond is not None and not beyond[1].empty:
        best, past = beyond
        text += (f"\n## accuracy past the pool: SIGnAL's family minus {best} at 100 % (the best pool-based "
                 "method with the whole pool labeled; points, same seed, mean ± std over the seeds both ran)\n\n"
                 + gain_markdown(past))
    generator = generator_summary(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report-staging-"))
    try:
        atomic_write_text(staging / "results.csv", table.to_csv(index=False))
        atomic_write_text(staging / "results.md", text)
        names = {"csv": "results.csv", "markdown": "results.md"}
        for metric in METRICS:
            plot_curves(table, staging / f"{metric}.png", metric, title, paired_gain(frame, metric, baseline), baseline,
                        beyond_pool_gain(frame, metric))
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
