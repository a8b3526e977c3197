"""Human annotation CSV files: spreadsheet-safe export, and the shapes spreadsheets save them back in."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from signal_al.core.errors import DataError
from signal_al.core.run_state import Item
from signal_al.engine.annotation.oracle import export_batch, import_labels, neutralize_cell, restore_cell

NAMES = ("negative", "positive")
ITEMS = [Item("r1", "=HYPERLINK(\"http://evil\",\"x\")"), Item("r2", "+1 great"), Item("syn:r1:0", "-- awful", source="synthetic"),
         Item("r3", "@SUM(A1)"), Item("r4", "'quoted"), Item("r5", "café naïve plain")]


def _read(path: Path, **kwargs) -> list[dict]:
    with open(path, encoding=kwargs.pop("encoding", "utf-8"), newline="") as handle:
        return [row for row in csv.DictReader(line for line in handle if not line.startswith("#"))]


@pytest.mark.parametrize("value", ["=1+1", "+x", "-x", "@x", "\tx", "\rx", "'x", "''=", "plain", "", "'"])
def test_neutralize_and_restore_round_trip(value: str) -> None:
    cell = neutralize_cell(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert restore_cell(cell) == value


def test_export_neutralizes_formulas_and_import_restores_them(tmp_path: Path) -> None:
    path = export_batch(ITEMS, tmp_path / "round_001.csv", NAMES)
    rows = _read(path)
    assert [r["text"] for r in rows] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'+1 great", "'-- awful", "'@SUM(A1)",
                                         "''quoted", "café naïve plain"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    rows[2]["label"] = "negative"
    for r in rows:
        r["label"] = r["label"] or "positive"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    labels = import_labels(path, [i.id for i in ITEMS], NAMES)
    assert labels == {"r1": 1, "r2": 1, "syn:r1:0": 0, "r3": 1, "r4": 1, "r5": 1}


def _write_filled(path: Path, *, delimiter: str = ",", header: tuple[str, ...] = ("id", "text", "source", "label"),
                  encoding: str = "utf-8", ids: tuple[str, ...] = ("r1", "r2"), comment: bool = True) -> Path:
    rows = [[ids[0], "un café crème, très bon", "real", "Positive"], [ids[1], "-- awful", "real", "0"]]
    lines = [delimiter.join(header)]
    for row in rows:
        lines.append(delimiter.join(f'"{c}"' if delimiter in c or "," in c else c for c in row))
    if comment:
        lines.append("# allowed labels: negative" + delimiter + " positive" + delimiter * 2)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize("case", ["bom", "semicolon", "upper_header", "cp1252", "tab", "all"])
def test_spreadsheet_saved_csvs_import(tmp_path: Path, case: str) -> None:
    kwargs: dict = {}
    if case in ("semicolon", "all"):
        kwargs["delimiter"] = ";"
    if case == "tab":
        kwargs["delimiter"] = "\t"
    if case in ("upper_header", "all"):
        kwargs["header"] = ("ID", "Text", "Source", "Label")
    if case in ("cp1252", "all"):
        kwargs["encoding"] = "cp1252"
    path = _write_filled(tmp_path / "round.csv", **kwargs)
    if case == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert import_labels(path, ["r1", "r2"], NAMES) == {"r1": 1, "r2": 0}


def test_excel_restored_or_stripped_apostrophe_ids(tmp_path: Path) -> None:
    path = _write_filled(tmp_path / "round.csv", ids=("'-r1", "-r2"))  # one kept the ', one lost it
    assert import_labels(path, ["-r1", "-r2"], NAMES) == {"-r1": 1, "-r2": 0}


@pytest.mark.parametrize("content, message", [
    (b"identifier,label\nr1,positive\n", "the header has no 'id' and 'label' columns"),
    (b"id,label\n,positive\n", "line 2: no id"),
    (b"id,label\nr9,positive\n", "line 2: id 'r9' is not in this annotation batch"),
    (b"id,label\nr1,maybe\nr2,0\n", "line 2: label 'maybe' is not one of negative, positive"),
    (b"id,label\nr1,1\n", "1 items of the batch have no row, e.g. id 'r2'"),
    (b"id,label\nr1,1\nr1,0\n", "line 3: id 'r1' is labeled twice"),
    (b"\x81\x8d\x8f\x90\x9d,\xff\xfe\n", "not UTF-8 or Windows-1252 text"),
])
def test_bad_annotation_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "round.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        import_labels(path, ["r1", "r2"], NAMES)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_jsonl_batches_still_round_trip(tmp_path: Path) -> None:
    path = export_batch(ITEMS[:2], tmp_path / "round.jsonl", NAMES)
    text = path.read_text(encoding="utf-8").replace('"label": ""', '"label": "positive"')
    path.write_text(text, encoding="utf-8")
    assert import_labels(path, ["r1", "r2"], NAMES) == {"r1": 1, "r2": 1}
