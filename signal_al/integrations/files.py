"""Score a table of texts (CSV/TSV/JSONL/JSON/Parquet) with a run's reward: ``signal-al score``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signal_al.core.errors import DataError

__all__ = ["SCORE_COLUMNS", "default_output", "score_file"]

SCORE_COLUMNS = ("signal_score", "knn_distance", "kl", "predicted_label", "confidence")
"""Columns added to the input: the score, its parts (mean distance to and mean KL against the k
nearest labeled items) and the classifier's prediction with its probability."""


def default_output(path: Path) -> Path:
    """``texts.csv`` -> ``texts.scores.csv`` beside it."""
    return path.with_name(f"{path.stem}.scores{path.suffix}")


def _column(frame: Any, name: str, path: Path, flag: str) -> list[str]:
    if name not in frame.columns:
        raise DataError(f"{path}: no column '{name}' (columns: {', '.join(map(str, frame.columns))}); "
                        f"choose one with {flag}")
    values = frame[name].tolist()
    bad = [i for i, v in enumerate(values) if v is not None and not isinstance(v, str) and v == v]
    if bad:
        raise DataError(f"{path}: row {bad[0] + 1}: column '{name}' holds {type(values[bad[0]]).__name__}, not text")
    return ["" if v is None or v != v else v for v in values]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values for json."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def _write(frame: Any, path: Path) -> None:
    from signal_al.core.io_utils import atomic_write_text
    from signal_al.data.local import SUFFIXES

    kind = SUFFIXES.get(path.suffix.lower())
    if kind in ("csv", "tsv"):
        atomic_write_text(path, frame.to_csv(index=False, sep="," if kind == "csv" else "\t"))
    elif kind in ("jsonl", "json"):  # json, not pandas: pandas rounds floats to 10 digits
        import json

        rows = [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        if kind == "jsonl":
            text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        else:
            text = json.dumps(rows, ensure_ascii=False, indent=1, default=str) + "\n"
        atomic_write_text(path, text)
    elif kind == "parquet":
        tmp = path.with_name(f".{path.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    else:
        raise DataError(f"{path}: unsupported output type; use one of {', '.join(sorted(SUFFIXES))}")


def score_file(scorer: Any, path: str | Path, output: str | Path | None = None, *, text_column: str = "text",
               text_pair_column: str | None = None, label_names: tuple[str, ...] | None = None) -> tuple[Path, Any]:
    """Add :data:`SCORE_COLUMNS` to the table in ``path`` and write it to ``output`` (default:
    :func:`default_output`); returns ``(output, ScoreDetails)`` of the scored rows.

    A row whose text is empty (or only spaces) has no SIGnAL score, since it is not an example of
    anything: its score columns stay empty and one warning names how many rows and the first one.
    """
    import numpy as np

    from signal_al.core.errors import warn
    from signal_al.data.local import read_table

    path = Path(path)
    frame = read_table(path)
    texts = _column(frame, text_column, path, "--text-column")
    pairs = _column(frame, text_pair_column, path, "--text-pair-column") if text_pair_column else None
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        warn(f"{path}: {len(empty)} of {len(texts)} rows have an empty text in column '{text_column}' (first: row "
             f"{empty[0] + 1}); they are not scored and their score columns stay empty")
    scored = [i for i in range(len(texts)) if i not in set(empty)]
    details = scorer.score_details([texts[i] for i in scored], None if pairs is None else [pairs[i] for i in scored])
    out = Path(output) if output is not None else default_output(path)
    frame = frame.copy()
    names = label_names or ()
    columns = {"signal_score": details.scores, "knn_distance": details.distance, "kl": details.kl,
               "predicted_label": [names[i] if i < len(names) else int(i) for i in details.prediction.tolist()],
               "confidence": details.confidence}
    for name, values in columns.items():
        column = np.full(len(texts), None, dtype=object)
        column[scored] = list(values) if len(scored) else []
        frame[name] = column if name == "predicted_label" else column.astype(np.float64)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(frame, out)
    return out, details
