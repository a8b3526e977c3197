"""Label Studio files for the human annotator: a round's batch as tasks, and the team's export back.

- :func:`labeling_config`: the labeling interface (one ``<Choices name="label">`` over the text, or
  the two texts of a pair task) to paste into the project's *Labeling Interface* settings.
- :func:`export_tasks`: the batch as Label Studio tasks JSON. ``data`` holds ``item_id`` (the run's
  item id), ``text`` (``text_pair``) and ``source``; with the classifier's predictions, each task
  carries one pre-annotation (``predictions[].result[].value.choices``, ``model_version`` =
  ``round-N``, ``score`` = its probability).
- :func:`import_annotations`: labels from a Label Studio export, JSON (``annotations[].result[]
  .value.choices``) or JSON-MIN (``label`` per row). Cancelled (skipped) annotations are ignored;
  when annotators disagree, an annotation marked *ground truth* decides, otherwise the conflicts
  are reported (a :class:`~signal_al.core.errors.DataError` listing them) rather than guessed.

Shapes follow Label Studio's documented import and export formats
(https://labelstud.io/guide/tasks.html, https://labelstud.io/guide/export.html).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from signal_al.core.errors import DataError
from signal_al.core.io_utils import atomic_write_text, decode_text
from signal_al.core.run_layout import LABELSTUDIO_CONFIG_FILE
from signal_al.core.run_state import Item

__all__ = ["FROM_NAME", "export_tasks", "import_annotations", "label_index", "labeling_config"]

FROM_NAME = "label"
"""``name`` of the Choices control tag (``from_name`` in results)."""
TO_NAME = "text"


def labeling_config(label_names: Sequence[str], *, pair: bool = False) -> str:
    """The Label Studio labeling interface XML for a batch."""
    texts = '  <Text name="text" value="$text"/>\n'
    if pair:
        texts += '  <Text name="text_pair" value="$text_pair"/>\n'
    choices = "".join(f"    <Choice value={quoteattr(name)}/>\n" for name in label_names)
    return (f'<View>\n{texts}  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInLine="true">\n'
            f"{choices}  </Choices>\n</View>\n")


def export_tasks(items: Sequence[Item], path: Path, label_names: Sequence[str], *, round_index: int,
                 predictions: Sequence[tuple[int, float]] | None = None) -> Path:
    """Write ``items`` as Label Studio tasks (with ``predictions[i] = (label, probability)`` as
    pre-annotations when given) to ``path``, and the labeling interface next to it
    (:data:`~signal_al.core.run_layout.LABELSTUDIO_CONFIG_FILE`)."""
    if predictions is not None and len(predictions) != len(items):
        raise ValueError(f"predictions: has {len(predictions)} rows but there are {len(items)} items")
    pair = any(item.text_pair is not None for item in items)
    tasks = []
    for i, item in enumerate(items):
        data: dict[str, Any] = {"item_id": item.id, "text": item.text}
        if pair:
            data["text_pair"] = item.text_pair or ""
        data["source"] = item.source
        task: dict[str, Any] = {"data": data}
        if predictions is not None:
            label, score = predictions[i]
            task["predictions"] = [{
                "model_version": f"round-{round_index}", "score": round(float(score), 6),
                "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                            "value": {"choices": [label_names[int(label)]]}}],
            }]
        tasks.append(task)
    atomic_write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    atomic_write_text(path.parent / LABELSTUDIO_CONFIG_FILE, labeling_config(label_names, pair=pair))
    return path


def label_index(value: Any, label_names: Sequence[str]) -> int | None:
    """A label name (any case) or integer id as the label's index, or None."""
    text = str(value).strip()
    lookup = {name.lower(): i for i, name in enumerate(label_names)}
    if text.lower() in lookup:
        return lookup[text.lower()]
    if text.isdigit() and int(text) < len(label_names):
        return int(text)
    return None


def _choices(result: Any, where: str, path: Path) -> list[str]:
    """The chosen labels of one annotation's ``result`` list (Choices results only)."""
    if not isinstance(result, list):
        raise DataError(f"{path}: {where}: 'result' is not a list")
    chosen: list[str] = []
    for entry in result:
        if not isinstance(entry, dict) or entry.get("type", "choices") != "choices":
            continue
        if entry.get("from_name", FROM_NAME) != FROM_NAME:
            continue
        value = entry.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list):
            raise DataError(f"{path}: {where}: a choices result without value.choices")
        chosen.extend(str(c) for c in choices)
    return chosen


def _rows(path: Path) -> list[Any]:
    if not path.is_file():
        raise DataError(f"{path}: Label Studio export not found")
    try:
        data = json.loads(decode_text(path.read_bytes(), path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}); export it from Label Studio "
                        "as JSON") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of tasks (Label Studio's JSON export)")
    return data


def import_annotations(path: Path, expected_ids: Sequence[str], label_names: Sequence[str]) -> dict[str, int]:
    """Labels by item id from a Label Studio JSON or JSON-MIN export of this batch.

    Raises:
        DataError: not a Label Studio export, a task of another batch, a label outside the label
            set, items without a (non-cancelled) annotation, or conflicting annotations (all listed).
    """
    expected = set(expected_ids)
    votes: dict[str, list[tuple[int, str, bool]]] = {}  # item id -> (label, annotator, ground truth)
    for number, task in enumerate(_rows(path), start=1):
        where = f"task {number}"
        if not isinstance(task, dict):
            raise DataError(f"{path}: {where}: expected a JSON object")
        data = task.get("data") if isinstance(task.get("data"), dict) else task  # JSON-MIN rows are flat
        item_id = str(data.get("item_id", "")).strip()
        if not item_id:
            raise DataError(f"{path}: {where}: no data.item_id; export the tasks written by signal-al")
        where = f"task {number} (item '{item_id}')"
        if item_id not in expected:
            raise DataError(f"{path}: {where}: item '{item_id}' is not in this annotation batch")
        found = votes.setdefault(item_id, [])
        if "annotations" in task:
            annotations = task["annotations"]
            if not isinstance(annotations, list):
                raise DataError(f"{path}: {where}: 'annotations' is not a list")
            for a, annotation in enumerate(annotations, start=1):
                if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                    continue  # skipped in Label Studio
                chosen = _choices(annotation.get("result", []), f"{where}, annotation {a}", path)
                if not chosen:
                    continue
                if len(chosen) > 1:
                    raise DataError(f"{path}: {where}, annotation {a}: {len(chosen)} labels chosen "
                                    f"({', '.join(chosen)}); choose one")
                label = label_index(chosen[0], label_names)
                if label is None:
                    raise DataError(f"{path}: {where}: label '{chosen[0]}' is not one of {', '.join(label_names)}")
                who = annotation.get("completed_by")
                who = who.get("email", who.get("id")) if isinstance(who, dict) else who
                found.append((label, str(who if who is not None else f"annotation {a}"),
                              bool(annotation.get("ground_truth"))))
        elif FROM_NAME in task:  # JSON-MIN: the control's value per row
            value = task[FROM_NAME]
            chosen = value.get("choices", []) if isinstance(value, dict) else value
            chosen = [chosen] if isinstance(chosen, str) else list(chosen or [])
            if len(chosen) > 1:
                raise DataError(f"{path}: {where}: {len(chosen)} labels chosen ({', '.join(map(str, chosen))}); "
                                "choose one")
            if chosen:
                label = label_index(chosen[0], label_names)
                if label is None:
                    raise DataError(f"{path}: {where}: label '{chosen[0]}' is not one of {', '.join(label_names)}")
                found.append((label, str(task.get("annotator", f"row {number}")), False))
    labels: dict[str, int] = {}
    conflicts: list[str] = []
    for item_id, found in votes.items():
        decided = {label for label, _, truth in found if truth}
        distinct = decided or {label for label, _, _ in found}
        if len(distinct) == 1:
            labels[item_id] = distinct.pop()
        elif len(distinct) > 1:
            conflicts.append(f"'{item_id}' (" + ", ".join(f"{label_names[label]} by {who}"
                                                          for label, who, _ in found) + ")")
    if conflicts:
        raise DataError(f"{path}: {len(conflicts)} items have conflicting annotations: {'; '.join(conflicts[:5])}"
                        f"{' ...' if len(conflicts) > 5 else ''}; resolve them in Label Studio (or mark one "
                        "annotation as ground truth) and export again")
    missing = [i for i in expected_ids if i not in labels]
    if missing:
        raise DataError(f"{path}: {len(missing)} items of the batch have no (non-cancelled) annotation, "
                        f"e.g. item '{missing[0]}'")
    return labels
