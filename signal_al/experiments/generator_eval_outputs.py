"""The outputs of a generator evaluation: a markdown table, a CSV, a plot and every sample."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from signal_al.core.io_utils import atomic_write_bytes, atomic_write_jsonl, atomic_write_text

__all__ = ["fmt_cell", "markdown_table", "plot_checkpoints", "write_outputs"]


def fmt_cell(value: Any, spec: str = ".4f") -> str:
    """A table cell: ``-`` for a missing value (never ``nan``)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[dict], label_names: Sequence[str]) -> str:
    """One row per checkpoint; reward as mean ± std, label counts as ``a / b / ...``."""
    gain = any("accuracy_gain" in row for row in rows)
    header = ["checkpoint", "n", "valid", "reward (mean ± std)", "distinct-1", "distinct-2", "self-BLEU",
              f"labels ({' / '.join(label_names)})", "label std", "distance to real"]
    header += ["accuracy", "accuracy gain"] if gain else []
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        # rewards have no fixed scale (KL over distance): significant digits, not decimals
        reward = "-" if row["reward_mean"] is None else f"{row['reward_mean']:.4g} ± {row['reward_std']:.4g}"
        cells = [row["checkpoint"], str(row["n"]), fmt_cell(row["valid_fraction"], ".3f"), reward,
                 fmt_cell(row["distinct_1"]), fmt_cell(row["distinct_2"]), fmt_cell(row["self_bleu"]),
                 " / ".join(str(row[f"label_{name}"]) for name in label_names), fmt_cell(row["label_std"], ".2f"),
                 fmt_cell(row["relevance_distance"], ".4g")]
        if gain:
            cells += [fmt_cell(row.get("accuracy")), f"{row['accuracy_gain']:+.4f}" if "accuracy_gain" in row else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PANELS = (
    ("valid_fraction", "valid fraction"),
    ("reward_mean", "SIGnAL reward (mean ± std)"),
    ("distinct_2", "distinct-1 / distinct-2"),
    ("self_bleu", "self-BLEU (lower: more diverse)"),
    ("label_std", "label count std (lower: balanced)"),
    ("relevance_distance", "distance to nearest real (lower: closer)"),
    ("accuracy_gain", "test accuracy gain"),
)


def plot_checkpoints(rows: Sequence[dict]) -> bytes:
    """A PNG with one bar panel per metric across the checkpoints (missing values: no bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in PANELS if any(key in row for row in rows)]
    columns = 4 if len(panels) > 6 else 3
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 3.0 * lines), dpi=110, squeeze=False)
    names = [row["checkpoint"] for row in rows]
    x = np.arange(len(rows))
    value = lambda row, key: np.nan if row.get(key) is None else float(row[key])  # noqa: E731
    for ax, (key, title) in zip(axes.ravel(), panels):
        if key == "distinct_2":
            ax.bar(x - 0.2, [value(r, "distinct_1") for r in rows], 0.4, label="distinct-1")
            ax.bar(x + 0.2, [value(r, "distinct_2") for r in rows], 0.4, label="distinct-2")
            ax.legend(fontsize=7)
        elif key == "reward_mean":
            ax.bar(x, [value(r, key) for r in rows], yerr=[0.0 if r.get("reward_std") is None else r["reward_std"]
                                                           for r in rows], capsize=3)
        else:
            ax.bar(x, [value(r, key) for r in rows])
        if key == "accuracy_gain":
            ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


CSV_COLUMNS = ("checkpoint", "n", "n_valid", "valid_fraction", "reward_mean", "reward_std", "distinct_1", "distinct_2",
               "self_bleu")


def write_outputs(rows: Sequence[dict], samples: Sequence[dict], out_dir: Path, label_names: Sequence[str],
                  preamble: str = "") -> dict[str, Path]:
    """generator_eval.csv / .md / .png and samples.jsonl in ``out_dir``, each written atomically."""
    import pandas as pd

    columns = [*CSV_COLUMNS, *(f"label_{name}" for name in label_names), "label_std", "relevance_distance",
               "dropped_by_reason", *(["accuracy", "accuracy_gain"] if any("accuracy" in r for r in rows) else [])]
    paths = {"csv": out_dir / "generator_eval.csv", "markdown": out_dir / "generator_eval.md",
             "plot": out_dir / "generator_eval.png", "samples": out_dir / "samples.jsonl"}
    atomic_write_text(paths["csv"], pd.DataFrame(list(rows), columns=columns).to_csv(index=False))
    atomic_write_text(paths["markdown"], (preamble + "\n\n" if preamble else "") + markdown_table(rows, label_names))
    atomic_write_bytes(paths["plot"], plot_checkpoints(rows))
    atomic_write_jsonl(paths["samples"], samples)
    return paths
