"""Local CSV / TSV / JSONL / JSON / Parquet files with a column mapping.

Every problem a user can make in such a file (missing file, unknown column, empty text,
a label outside the label set, a malformed line, an encoding other than UTF-8) is a one-line
DataError that names the file and the line (CSV/TSV/JSONL: the line the record starts on,
quoted fields spanning lines counted) or row. Data that would be accepted but mean something
else is refused too: ``1`` and ``1.0`` are one label, a list is not a label, labels that differ
only in case and a label column that holds text or ids are errors; the same text with two
labels, or twice, is a warning (real corpora have such noise; a classifier learns one of the labels, and
a copy may land in both the pool and the test split).
"""

from __future__ import annotations

import csv
import io
import json
import numbers
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from signal_al.core.errors import DataError, warn
from signal_al.core.io_utils import decode_text, json_object_lines
from signal_al.data.task import TaskSpec, TextDataset

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def is_local_file(task: str) -> bool:
    """Whether ``task`` names a data file (by suffix) rather than a built-in or hub task."""
    return Path(task).suffix.lower() in SUFFIXES


def _read_delimited(text: str, path: Path, delimiter: str) -> tuple[pd.DataFrame, list[str]]:
    """A CSV/TSV text as strings, with the line each record starts on (a quoted field may span lines;
    blank lines are skipped, as pandas does)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    places: list[str] = []
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:  # an empty line (a quoted "" is a row with one empty field)
                continue
            if header is None:
                header = cells
                twice = sorted({name for name in header if header.count(name) > 1})
                if twice:
                    raise DataError(f"{path}: line {line}: the header names column '{twice[0]}' more than once")
                continue
            if len(cells) > len(header):
                raise DataError(f"{path}: line {line}: {len(cells)} fields, but the header has {len(header)} columns "
                                "(a text with an unquoted separator?)")
            rows.append(cells + [""] * (len(header) - len(cells)))
            places.append(f"line {line}")
    except csv.Error as exc:
        hint = " (a quote opened on this line is never closed?)" if "end of data" in str(exc) else ""
        raise DataError(f"{path}: line {start}: cannot read as {'tsv' if delimiter == chr(9) else 'csv'}: "
                        f"{exc}{hint}") from None
    return pd.DataFrame(rows, columns=header or [], dtype=str), places


def read_rows(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The file as a DataFrame of strings (CSV/TSV) or native values (JSON/Parquet), and where each
    row is in the file ("line 7" for CSV/TSV/JSONL, "row 3" for JSON and Parquet) for messages."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(sorted(SUFFIXES))}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: cannot read as parquet: {' '.join(str(exc).split())}") from None
        return frame, [f"row {i + 1}" for i in range(len(frame))]
    text = decode_text(path.read_bytes(), path)
    if kind in ("csv", "tsv"):
        return _read_delimited(text, path, "," if kind == "csv" else "\t")
    if kind == "jsonl":
        numbered = list(json_object_lines(text.splitlines(), path))
        return pd.DataFrame([row for _, row in numbered]), [f"line {number}" for number, _ in numbered]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: cannot read as json: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(data, dict):
        data = data.get("data", data)
    try:
        frame = pd.DataFrame(data)
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as json: {' '.join(str(exc).split())}") from None
    return frame, [f"row {i + 1}" for i in range(len(frame))]


def read_table(path: str | Path) -> pd.DataFrame:
    """The file as a DataFrame of strings (CSV/TSV) or native values (JSON/Parquet)."""
    return read_rows(path)[0]


def _missing_column(path: Path, column: str, frame: pd.DataFrame, what: str = "column") -> DataError:
    columns = [str(c) for c in frame.columns]
    hint = ""
    if len(columns) == 1:
        used = [name for sep, name in ((";", "';'"), ("\t", "a tab"), ("|", "'|'"), (",", "','")) if sep in columns[0]]
        if used:
            hint = (f"; the header looks separated by {used[0]}: a .csv file is read with ',' and a .tsv file with "
                    "a tab")
    return DataError(f"{path}: no {what} '{column}' (columns: {', '.join(columns)}){hint}")


def _texts(frame: pd.DataFrame, column: str, path: Path, places: list[str]) -> list[str]:
    if column not in frame.columns:
        raise _missing_column(path, column, frame)
    texts = []
    for index, value in enumerate(frame[column].tolist()):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
        if not text:
            raise DataError(f"{path}: {places[index]}: empty text in column '{column}'")
        texts.append(text)
    return texts


#: Label cells that mean "no label" in some tool (pandas, R, spreadsheets), compared in lower case.
MISSING_LABELS = frozenset({"", "none", "null", "nan", "-nan", "na", "n/a", "#n/a", "<na>"})
_INTEGER = re.compile(r"([+-]?\d+)(?:\.0*)?")
#: More distinct labels than this, in more than half of the rows, is text or ids, not a label column.
MAX_LABELS_IN_A_FREE_COLUMN = 20


def _label_key(value: object) -> str | None:
    """A label cell as the label it names; None for a cell that is not one value (a list, a mapping).

    Labels compare as strings, with every spelling of one integer the same label: 1, 1.0, "1.0",
    "+1" and "01" from different formats or tools are all "1".
    """
    if isinstance(value, (list, tuple, dict, set, np.ndarray)):
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if float(value).is_integer():
            return str(int(value))
        return str(value).strip()
    text = str(value).strip()
    match = _INTEGER.fullmatch(text)
    return str(int(match.group(1))) if match else text


def infer_label_names(values: list[str]) -> list[str]:
    """Distinct labels, sorted numerically when all are integers, else alphabetically."""
    distinct = sorted(set(values))
    if all(v.lstrip("-").isdigit() for v in distinct):
        distinct = sorted(distinct, key=int)
    return distinct


def _labels(
    frame: pd.DataFrame, column: str, label_names: list[str] | None, path: Path, places: list[str]
) -> tuple[np.ndarray, list[str]]:
    if column not in frame.columns:
        raise _missing_column(path, column, frame, "label column")
    raw: list[str] = []
    for index, value in enumerate(frame[column].tolist()):
        key = _label_key(value)
        if key is None:
            raise DataError(f"{path}: {places[index]}: the label in column '{column}' is a "
                            f"{type(value).__name__} ({str(value)[:40]}); a label is one value: a name or an integer id")
        raw.append(key)
    configured = set(label_names or ())
    for index, value in enumerate(raw):
        if value.lower() in MISSING_LABELS and value not in configured:
            shown = f" ({value!r})" if value else ""
            raise DataError(f"{path}: {places[index]}: missing label{shown} in column '{column}'")
    if label_names is None:
        names = infer_label_names(raw)
        _check_inferred_labels(names, len(raw), column, path)
    else:
        names = list(label_names)
    lookup = {name: i for i, name in enumerate(names)}
    lookup.update({_label_key(name): i for i, name in enumerate(names) if _label_key(name) not in lookup})
    ids_allowed = label_names is not None
    labels = np.empty(len(raw), dtype=np.int64)
    for index, value in enumerate(raw):
        if value in lookup:
            labels[index] = lookup[value]
        elif ids_allowed and value.isdigit() and int(value) < len(names):
            labels[index] = int(value)  # integer ids into the configured label_names
        else:
            raise DataError(
                f"{path}: {places[index]}: label '{value}' is not one of {', '.join(names)}"
            )
    return labels, names


def _check_inferred_labels(names: list[str], rows: int, column: str, path: Path) -> None:
    """Labels read from the file that would silently mean something else: two spellings of one label
    in different case, or a column of texts or ids (one class per row)."""
    by_case: dict[str, list[str]] = {}
    for name in names:
        by_case.setdefault(name.casefold(), []).append(name)
    clash = next((group for group in by_case.values() if len(group) > 1), None)
    if clash is not None:
        raise DataError(f"{path}: column '{column}' has labels {' and '.join(repr(n) for n in clash[:3])}, which "
                        "differ only in case and would be separate classes; write them one way, or list them all "
                        "in data.label_names to keep them apart")
    if len(names) > MAX_LABELS_IN_A_FREE_COLUMN and len(names) > rows / 2:
        raise DataError(f"{path}: column '{column}' has {len(names)} distinct values in {rows} rows, so it holds "
                        "texts or ids, not labels (one class per row); choose the label column with "
                        "data.label_column (--label-column), or list the labels in data.label_names")


def _ids(frame: pd.DataFrame, path: Path, places: list[str]) -> list[str]:
    """The ``id`` column as strings: every id present and unique (an id names one item of the pool)."""
    ids: list[str] = []
    first: dict[str, int] = {}
    for index, value in enumerate(frame["id"].tolist()):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        if not text:
            raise DataError(f"{path}: {places[index]}: empty value in column 'id'")
        if text in first:
            raise DataError(f"{path}: {places[index]}: id '{text}' already used at "
                            f"{places[first[text]]}; ids in column 'id' must be unique")
        first[text] = index
        ids.append(text)
    return ids


def _warn_duplicates(texts: list[str], pairs: list[str] | None, labels: np.ndarray, names: list[str],
                     path: Path, places: list[str]) -> None:
    """One warning when the same text (pair) appears twice: with different labels (a classifier cannot
    learn both), else with the same one (a copy may land in both the real pool and the test split)."""
    first: dict[tuple[str, str | None], int] = {}
    conflicts: list[tuple[int, int]] = []
    copies: list[tuple[int, int]] = []
    for index, text in enumerate(texts):
        key = (text, None if pairs is None else pairs[index])
        if key not in first:
            first[key] = index
        else:
            (conflicts if labels[first[key]] != labels[index] else copies).append((first[key], index))
    found = conflicts or copies
    if not found:
        return
    a, b = found[0]
    shown = texts[a] if len(texts[a]) <= 40 else texts[a][:40] + "..."
    others = f" ({len(found) - 1} more such rows)" if len(found) > 1 else ""
    if conflicts:
        warn(f"{path}: the same text has different labels: {shown!r} is {names[labels[a]]} at {places[a]} and "
             f"{names[labels[b]]} at {places[b]}{others}; both rows are kept")
    else:
        warn(f"{path}: the same text appears twice: {shown!r} at {places[a]} and {places[b]}{others}; both rows are "
             "kept, so a copy may be in the real pool and the test split at once")


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
    frame, places = read_rows(path)
    if len(frame) == 0:
        raise DataError(f"{path}: the file has no rows")
    texts = _texts(frame, text_column, path, places)
    pairs = _texts(frame, text_pair_column, path, places) if text_pair_column else None
    labels, names = _labels(frame, label_column, label_names, path, places)
    if len(names) < 2:
        raise DataError(f"{path}: column '{label_column}' has a single label ({names[0]}); need at least two")
    _warn_duplicates(texts, pairs, labels, names, path, places)
    spec = TaskSpec(
        name=path.stem,
        label_names=tuple(names),
        domain=f"{path.stem} examples",
        is_pair=pairs is not None,
        instruction=instruction or "",
    )
    ids = _ids(frame, path, places) if "id" in frame.columns else []
    return spec, TextDataset(texts=texts, labels=labels, text_pairs=pairs, ids=ids)
