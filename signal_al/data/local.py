"""Local CSV / TSV / JSONL / JSON / Parquet files with a column mapping.

Every problem a user can make in such a file (missing file, unknown column, empty text,
a label outside the label set, a malformed line) is a one-line DataError that names the
file and the line or row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from signal_al.data.task import TaskSpec, TextDataset
from signal_al.io_utils import json_object_lines
from signal_al.errors import DataError

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def is_local_file(task: str) -> bool:
    """Whether ``task`` names a data file (by suffix) rather than a built-in or hub task."""
    return Path(task).suffix.lower() in SUFFIXES


def _read_jsonl(path: Path) -> pd.DataFrame:
    with open(path, encoding="utf-8") as handle:
        rows = [row for _, row in json_object_lines(handle, path)]
    return pd.DataFrame(rows)


def read_table(path: str | Path) -> pd.DataFrame:
    """The file as a DataFrame of strings (CSV/TSV) or native values (JSON/Parquet)."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(sorted(SUFFIXES))}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False)
        if kind == "jsonl":
            return _read_jsonl(path)
        if kind == "json":
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if isinstance(data, dict):
                data = data.get("data", data)
            return pd.DataFrame(data)
        return pd.read_parquet(path)
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        message = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read as {kind}: {message}") from None


def _row_label(kind: str, index: int) -> str:
    """How to point a user at row ``index`` (0-based data row) of a file."""
    if kind in ("csv", "tsv"):
        return f"line {index + 2}"  # header is line 1
    return f"row {index + 1}"


def _texts(frame: pd.DataFrame, column: str, path: Path, kind: str) -> list[str]:
    if column not in frame.columns:
        raise DataError(f"{path}: no column '{column}' (columns: {', '.join(map(str, frame.columns))})")
    texts = []
    for index, value in enumerate(frame[column].tolist()):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
        if not text:
            raise DataError(f"{path}: {_row_label(kind, index)}: empty text in column '{column}'")
        texts.append(text)
    return texts


#: Label cells that mean "no label" in some tool (pandas, R, spreadsheets), compared in lower case.
MISSING_LABELS = frozenset({"", "none", "null", "nan", "-nan", "na", "n/a", "#n/a", "<na>"})


def _label_key(value: object) -> str:
    """Labels compare as strings so that 1, 1.0 and "1" from different formats agree."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def infer_label_names(values: list[str]) -> list[str]:
    """Distinct labels, sorted numerically when all are integers, else alphabetically."""
    distinct = sorted(set(values))
    if all(v.lstrip("-").isdigit() for v in distinct):
        distinct = sorted(distinct, key=int)
    return distinct


def _labels(
    frame: pd.DataFrame, column: str, label_names: list[str] | None, path: Path, kind: str
) -> tuple[np.ndarray, list[str]]:
    if column not in frame.columns:
        raise DataError(f"{path}: no label column '{column}' (columns: {', '.join(map(str, frame.columns))})")
    raw = [_label_key(v) for v in frame[column].tolist()]
    configured = set(label_names or ())
    for index, value in enumerate(raw):
        if value.lower() in MISSING_LABELS and value not in configured:
            shown = f" ({value!r})" if value else ""
            raise DataError(f"{path}: {_row_label(kind, index)}: missing label{shown} in column '{column}'")
    names = list(label_names) if label_names is not None else infer_label_names(raw)
    lookup = {name: i for i, name in enumerate(names)}
    ids_allowed = label_names is not None
    labels = np.empty(len(raw), dtype=np.int64)
    for index, value in enumerate(raw):
        if value in lookup:
            labels[index] = lookup[value]
        elif ids_allowed and value.isdigit() and int(value) < len(names):
            labels[index] = int(value)  # integer ids into the configured label_names
        else:
            raise DataError(
                f"{path}: {_row_label(kind, index)}: label '{value}' is not one of {', '.join(names)}"
            )
    return labels, names


def _ids(frame: pd.DataFrame, path: Path, kind: str) -> list[str]:
    """The ``id`` column as strings: every id present and unique (an id names one item of the pool)."""
    ids: list[str] = []
    first: dict[str, int] = {}
    for index, value in enumerate(frame["id"].tolist()):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        if not text:
            raise DataError(f"{path}: {_row_label(kind, index)}: empty value in column 'id'")
        if text in first:
            raise DataError(f"{path}: {_row_label(kind, index)}: id '{text}' already used at "
                            f"{_row_label(kind, first[text])}; ids in column 'id' must be unique")
        first[text] = index
        ids.append(text)
    return ids


def load_local_file(
    path: str | Path,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_names: list[str] | None = None,
    instruction: str | None = None,
) -> tuple[TaskSpec, TextDataset]:
    """A local file as a task spec and a dataset, checked row by row."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower(), "")
    frame = read_table(path)
    if len(frame) == 0:
        raise DataError(f"{path}: the file has no rows")
    texts = _texts(frame, text_column, path, kind)
    pairs = _texts(frame, text_pair_column, path, kind) if text_pair_column else None
    labels, names = _labels(frame, label_column, label_names, path, kind)
    if len(names) < 2:
        raise DataError(f"{path}: column '{label_column}' has a single label ({names[0]}); need at least two")
    spec = TaskSpec(
        name=path.stem,
        label_names=tuple(names),
        domain=f"{path.stem} examples",
        is_pair=pairs is not None,
        instruction=instruction or "",
    )
    ids = _ids(frame, path, kind) if "id" in frame.columns else []
    return spec, TextDataset(texts=texts, labels=labels, text_pairs=pairs, ids=ids)
