"""Annotators: who gives a label to a selected item.

- ``GroundTruthAnnotator`` reveals a real pool item's hidden label, only when it is selected.
- ``ModelAnnotator`` is the paper's annotator for synthetic text: a classifier fine-tuned on
  the task's full train split (never the test split), trained once and cached.
- Human annotation goes through files: ``export_batch`` writes the selected items,
  the run stops with :class:`AnnotationRequired`, and ``import_labels`` reads the filled
  file back, checking every row against the batch and the label set.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from signal_al.classifier.config import ClassifierConfig
from signal_al.core.errors import DataError, UserError, warn
from signal_al.core.io_utils import (atomic_directory, atomic_write_json, atomic_write_text, decode_text,
                                     json_object_lines)
from signal_al.core.run_state import Item
from signal_al.data.task import TaskData
from signal_al.engine.annotation.labelstudio import label_index


class AnnotationRequired(UserError):
    """The run stopped to wait for a person to label a batch file (not a failure)."""

    def __init__(self, path: Path, count: int, run_dir: Path, *, labelstudio: Path | None = None) -> None:
        self.path = path
        self.labelstudio = labelstudio
        alternative = "" if labelstudio is None else (
            f" (or import {labelstudio} into Label Studio, label there, and save its JSON export as "
            f"{labelstudio.with_name(labelstudio.name.replace('.labelstudio.json', '.labelstudio-export.json'))})")
        super().__init__(
            f"{count} items need labels: fill the 'label' column of {path}{alternative} and run "
            f"`signal-al resume {run_dir}`"
        )


class GroundTruthAnnotator:
    """Reveals the hidden label of a real item; synthetic items have none."""

    name = "ground_truth"

    def __init__(self, hidden_labels: dict[str, int]) -> None:
        self._hidden = hidden_labels

    def annotate(self, items: list[Item]) -> list[int]:
        missing = [item.id for item in items if item.id not in self._hidden]
        if missing:
            raise ValueError(f"no ground-truth label for {len(missing)} items, e.g. {missing[0]}")
        return [self._hidden[item.id] for item in items]


@dataclass
class AnnotatorInfo:
    model: str
    task: str
    train_size: int
    test_accuracy: float
    test_macro_f1: float
    seconds: float


class ModelAnnotator:
    """Labels text with a classifier trained on the full train split (argmax of its prediction)."""

    name = "model"

    def __init__(self, model: Any, tokenizer: Any, config: ClassifierConfig, info: AnnotatorInfo,
                 device: Any = "cpu") -> None:
        self.model, self.tokenizer, self.config, self.info, self.device = model, tokenizer, config, info, device

    def annotate(self, items: list[Item]) -> list[int]:
        from signal_al.classifier.inference import predict_rows

        if not items:
            return []
        output = predict_rows(self.model, self.tokenizer, items, self.config, device=self.device)
        return output.probs.argmax(axis=1).astype(int).tolist()


def _annotator_key(data: TaskData, config: ClassifierConfig, seed: int) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(config), sort_keys=True).encode())
    digest.update(str(seed).encode())
    for text, label in zip(data.train.texts, data.train.labels.tolist()):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()[:16]


def load_or_train_model_annotator(
    data: TaskData, config: ClassifierConfig, *, cache_root: Path, seed: int = 0, device: Any = "cpu",
    progress: bool = True,
) -> ModelAnnotator:
    """The cached annotator for this task and classifier recipe, trained (once) when missing."""
    import time

    from signal_al.assets.registry import resolve_model
    from signal_al.classifier.fit_eval import fit_and_evaluate
    from signal_al.classifier.training import load_tokenizer

    from signal_al.core.model_files import model_folder_problem

    folder = cache_root / "annotators" / f"{data.spec.name}-{_annotator_key(data, config, seed)}"
    damaged = (folder / "annotator.json").is_file() and model_folder_problem(folder)
    if damaged:  # a truncated copy in the cache: train it again rather than fail deep in loading
        warn(f"the cached model annotator {folder} is damaged ({damaged}); training it again")
    elif (folder / "annotator.json").is_file():
        from transformers import AutoModelForSequenceClassification

        info = AnnotatorInfo(**json.loads((folder / "annotator.json").read_text()))
        model = AutoModelForSequenceClassification.from_pretrained(folder).to(device).eval()
        return ModelAnnotator(model, load_tokenizer(str(folder)), config, info, device)

    start = time.perf_counter()
    source = resolve_model(config.model)
    tokenizer = load_tokenizer(source)
    fit = fit_and_evaluate(source, tokenizer, data.train, data.test, data.spec.label_names, config, seed=seed,
                           device=device, progress=progress)
    model, metrics = fit.model, fit.metrics
    info = AnnotatorInfo(config.model, data.spec.name, len(data.train), metrics["accuracy"], metrics["macro_f1"],
                         time.perf_counter() - start)
    with atomic_directory(folder) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        atomic_write_json(staging / "annotator.json", asdict(info))
    return ModelAnnotator(model.eval(), tokenizer, config, info, device)


# --- human annotation through files ----------------------------------------------------------

#: A spreadsheet runs a cell starting with one of these as a formula (CSV injection); ``'`` is
#: here too so that neutralising stays reversible for text that already starts with it.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "'")
CSV_DELIMITERS = (",", ";", "\t", "|")


def neutralize_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` before a formula-starting character.

    >>> neutralize_cell("=1+1"), neutralize_cell("fine")
    ("'=1+1", 'fine')
    """
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def restore_cell(value: str) -> str:
    """Undo :func:`neutralize_cell` (a cell a spreadsheet saved without the ``'`` is left as it is).

    >>> restore_cell("'=1+1"), restore_cell("=1+1"), restore_cell("'tis")
    ('=1+1', '=1+1', "'tis")
    """
    return value[1:] if value.startswith("'") and value[1:2] and value[1] in "".join(FORMULA_PREFIXES) else value


def export_batch(items: list[Item], path: Path, label_names: tuple[str, ...]) -> Path:
    """Write the items to label as CSV (or JSONL by suffix) with an empty ``label`` column.

    CSV cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` ...) get a
    leading ``'`` (:func:`neutralize_cell`); :func:`import_labels` removes it again."""
    rows = [{"id": item.id, "text": item.text, **({"text_pair": item.text_pair} if item.text_pair else {}),
             "source": item.source, "label": ""} for item in items]
    if path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    else:
        import io

        buffer = io.StringIO()
        fields = ["id", "text", *(["text_pair"] if any("text_pair" in r for r in rows) else []), "source", "label"]
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: neutralize_cell(str(value)) for key, value in row.items()} for row in rows)
        buffer.write(f"# allowed labels: {', '.join(label_names)}\n")
        atomic_write_text(path, buffer.getvalue())
    return path


def _decode(path: Path) -> str:
    """The file's text: UTF-8 (with or without a BOM), UTF-16/32 with a BOM (Excel's "Unicode text"),
    else Windows-1252 (what Excel saves as "CSV"); anything else is an encoding error, not a header one."""
    return decode_text(path.read_bytes(), path, fallback="cp1252")


def _csv_rows(path: Path, expected_ids: set[str]) -> list[tuple[str, dict[str, str]]]:
    """``(where, row)`` of a filled CSV batch: any of , ; TAB | as separator, header names in any case,
    comment and empty lines skipped, formula-neutralised cells restored.

    A comment is a line whose first cell starts with ``#`` and is not an id of the batch (the export
    ends with ``# allowed labels: ...``; an item id may itself start with ``#``)."""
    import io

    text = _decode(path)
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip() and not line.lstrip().startswith(("#", '"#'))), "")
    header_names = None
    for delimiter in CSV_DELIMITERS:
        names = [restore_cell(n.strip().strip('"').strip().lower()) for n in next(csv.reader([header_line],
                                                                                            delimiter=delimiter))]
        if "id" in names and "label" in names:
            header_names = (delimiter, names)
            break
    if header_names is None:
        raise DataError(f"{path}: the header has no 'id' and 'label' columns (found: {header_line[:80]!r}); "
                        "keep the header row the batch was written with")
    delimiter, names = header_names
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[str, dict[str, str]]] = []
    seen_header = False
    start = 1
    for cells in reader:
        where = f"line {start}"
        start = reader.line_num + 1
        if not cells or all(not c.strip() for c in cells):
            continue
        if cells[0].lstrip().startswith("#") and restore_cell(cells[0].strip()) not in expected_ids:
            continue
        if not seen_header:
            seen_header = True
            continue
        rows.append((where, {name: restore_cell(cells[i].strip()) if i < len(cells) else ""
                             for i, name in enumerate(names)}))
    return rows


def import_labels(path: Path, expected_ids: list[str], label_names: tuple[str, ...]) -> dict[str, int]:
    """Labels from a filled batch file; every row is checked against the batch and label set.

    A CSV may come back from a spreadsheet with a byte-order mark, ``;`` separators, an ``ID``
    header or in Windows-1252: all read; anything else wrong is a one-line DataError."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    if path.suffix == ".jsonl":
        rows = [(f"line {number}", {str(k).strip().lower(): v for k, v in row.items()})
                for number, row in json_object_lines(_decode(path).splitlines(), path)]
    else:
        rows = _csv_rows(path, set(expected_ids))
    expected = set(expected_ids)
    labels: dict[str, int] = {}
    for where, row in rows:
        item_id = str(row.get("id", "") if row.get("id") is not None else "").strip()
        if not item_id:
            raise DataError(f"{path}: {where}: no id (the row's 'id' cell is empty)")
        if item_id not in expected:
            raise DataError(f"{path}: {where}: id '{item_id}' is not in this annotation batch")
        if item_id in labels:
            raise DataError(f"{path}: {where}: id '{item_id}' is labeled twice")
        value = str(row.get("label", "") if row.get("label") is not None else "").strip()
        if not value:
            raise DataError(f"{path}: {where}: no label for id '{item_id}'")
        label = label_index(value, label_names)
        if label is None:
            raise DataError(f"{path}: {where}: label '{value}' is not one of {', '.join(label_names)}")
        labels[item_id] = label
    missing = [i for i in expected_ids if i not in labels]
    if missing:
        raise DataError(f"{path}: {len(missing)} items of the batch have no row, e.g. id '{missing[0]}'")
    return labels
