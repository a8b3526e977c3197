"""Label Studio round trip: tasks with pre-annotations out, JSON / JSON-MIN exports back in.

The exports below are written by hand in the shapes of Label Studio's documentation
(https://labelstud.io/guide/export.html#Label-Studio-JSON-format-of-annotated-tasks); no network.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reward_helpers import fake_run

from signal_al.core.errors import DataError
from signal_al.core.run_state import Item
from signal_al.engine.annotation.annotate import annotate_round, batch_files
from signal_al.engine.annotation.labelstudio import export_tasks, import_annotations, labeling_config
from signal_al.engine.annotation.oracle import AnnotationRequired
from signal_al.engine.context import RunContext
from signal_al.engine.store import RunStore

NAMES = ("negative", "positive")
ITEMS = [Item("r1", "a great film"), Item("syn:r2:0", "an awful plot", source="synthetic"), Item("r3", "boring")]


def _annotation(choice: str | list[str], *, who: int = 1, cancelled: bool = False, truth: bool = False) -> dict:
    choices = [choice] if isinstance(choice, str) else choice
    return {"id": 100 + who, "completed_by": who, "was_cancelled": cancelled, "ground_truth": truth,
            "lead_time": 3.2, "created_at": "2026-11-30T10:00:00.000Z", "updated_at": "2026-11-30T10:00:00.000Z",
            "result": [{"id": "a1b2", "type": "choices", "from_name": "label", "to_name": "text", "origin": "manual",
                        "value": {"choices": choices}}]}


def _task(number: int, item: Item, annotations: list[dict]) -> dict:
    return {"id": number, "inner_id": number, "project": 7, "file_upload": "round_001.labelstudio.json",
            "data": {"item_id": item.id, "text": item.text, "source": item.source},
            "annotations": annotations, "drafts": [], "predictions": [41 + number],
            "meta": {}, "created_at": "2026-11-30T09:00:00.000Z", "updated_at": "2026-11-30T10:00:00.000Z"}


def _write(path: Path, tasks: list) -> Path:
    path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    return path


def test_tasks_carry_the_prediction_as_a_pre_annotation(tmp_path: Path) -> None:
    path = export_tasks(ITEMS, tmp_path / "round_002.labelstudio.json", NAMES, round_index=2,
                        predictions=[(1, 0.91), (0, 0.66), (1, 0.5)])
    tasks = json.loads(path.read_text())
    assert [t["data"] for t in tasks] == [{"item_id": i.id, "text": i.text, "source": i.source} for i in ITEMS]
    prediction = tasks[1]["predictions"][0]
    assert prediction["model_version"] == "round-2" and prediction["score"] == pytest.approx(0.66)
    assert prediction["result"] == [{"from_name": "label", "to_name": "text", "type": "choices",
                                     "value": {"choices": ["negative"]}}]
    view = ET.fromstring((tmp_path / "labelstudio_config.xml").read_text())
    choices = view.find("Choices")
    assert choices.get("name") == "label" and choices.get("toName") == "text" and choices.get("choice") == "single"
    assert [c.get("value") for c in choices] == list(NAMES)
    assert view.find("Text").get("value") == "$text"
    # without a classifier (round 0) the tasks have no predictions
    tasks = json.loads(export_tasks(ITEMS, tmp_path / "r0.json", NAMES, round_index=0).read_text())
    assert all("predictions" not in t for t in tasks)


def test_pair_tasks_show_both_texts() -> None:
    view = ET.fromstring(labeling_config(["a", "b & c"], pair=True))
    assert [t.get("value") for t in view.findall("Text")] == ["$text", "$text_pair"]
    assert [c.get("value") for c in view.find("Choices")] == ["a", "b & c"]


def test_json_export_imports_skipping_cancelled_and_agreeing_duplicates(tmp_path: Path) -> None:
    path = _write(tmp_path / "export.json", [
        _task(1, ITEMS[0], [_annotation("positive"), _annotation("negative", who=2, cancelled=True)]),
        _task(2, ITEMS[1], [_annotation("Negative"), _annotation("negative", who=2)]),
        _task(3, ITEMS[2], [_annotation("negative", who=3)]),
    ])
    assert import_annotations(path, [i.id for i in ITEMS], NAMES) == {"r1": 1, "syn:r2:0": 0, "r3": 0}


def test_json_min_export_imports(tmp_path: Path) -> None:
    rows = [{"id": n, "item_id": i.id, "text": i.text, "source": i.source, "label": label, "annotator": 1,
             "annotation_id": 200 + n, "created_at": "2026-11-30T10:00:00Z", "lead_time": 2.0}
            for n, (i, label) in enumerate(zip(ITEMS, ["positive", "negative", "positive"]), start=1)]
    assert import_annotations(_write(tmp_path / "min.json", rows), [i.id for i in ITEMS], NAMES) == {
        "r1": 1, "syn:r2:0": 0, "r3": 1}


def test_conflicts_are_reported_and_ground_truth_decides(tmp_path: Path) -> None:
    tasks = [_task(1, ITEMS[0], [_annotation("positive"), _annotation("negative", who=2)]),
             _task(2, ITEMS[1], [_annotation("negative")]), _task(3, ITEMS[2], [_annotation("negative")])]
    with pytest.raises(DataError, match=r"1 items have conflicting annotations: 'r1' \(positive by 1, negative by "
                                        r"2\); resolve them in Label Studio"):
        import_annotations(_write(tmp_path / "e.json", tasks), [i.id for i in ITEMS], NAMES)
    tasks[0]["annotations"][1]["ground_truth"] = True
    assert import_annotations(_write(tmp_path / "e.json", tasks), [i.id for i in ITEMS], NAMES)["r1"] == 0


@pytest.mark.parametrize("tasks, message", [
    ([_task(1, ITEMS[0], [_annotation("positive")])], "2 items of the batch have no (non-cancelled) annotation"),
    ([_task(1, ITEMS[0], [_annotation("positive", cancelled=True)]), _task(2, ITEMS[1], [_annotation("negative")]),
      _task(3, ITEMS[2], [_annotation("negative")])], "1 items of the batch have no (non-cancelled) annotation, "
                                                       "e.g. item 'r1'"),
    ([_task(1, Item("zz", "x"), [_annotation("positive")])], "item 'zz' is not in this annotation batch"),
    ([_task(1, ITEMS[0], [_annotation("neutral")])], "label 'neutral' is not one of negative, positive"),
    ([_task(1, ITEMS[0], [_annotation(["negative", "positive"])])], "2 labels chosen"),
    ([{"data": {"text": "no id"}, "annotations": []}], "no data.item_id"),
    ({"not": "a list"}, "no data.item_id"),
])
def test_bad_exports_are_one_line_errors(tmp_path: Path, tasks, message: str) -> None:
    with pytest.raises(DataError) as info:
        import_annotations(_write(tmp_path / "e.json", tasks), [i.id for i in ITEMS], NAMES)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_invalid_json_export(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON"):
        import_annotations(path, ["r1"], NAMES)


def test_annotate_round_exports_both_files_and_imports_a_label_studio_export(tmp_path: Path,
                                                                            tiny_classifier_dir: Path) -> None:
    run_dir = fake_run(tmp_path, tiny_classifier_dir, active_learning={"annotator": "human"})
    store = RunStore(run_dir)
    state = store.load_state()
    context = RunContext(store.saved_config(), progress=False, log=lambda _: None)
    assert context.label_names == NAMES
    batch = [item for item in state.items if item.id.startswith("u")][:2]
    commit = lambda s: store.persist(s, NAMES)  # noqa: E731
    with pytest.raises(AnnotationRequired, match="labelstudio-export.json"):
        annotate_round(context, state, 2, batch, commit=commit)
    files = batch_files(run_dir, 2)
    assert files["csv"].is_file() and (run_dir / "annotation" / "labelstudio_config.xml").is_file()
    tasks = json.loads(files["labelstudio"].read_text())
    assert [t["data"]["item_id"] for t in tasks] == ["u0", "u1"]
    assert all(t["predictions"][0]["model_version"] == "round-2" for t in tasks)  # the selecting classifier's
    assert all(t["predictions"][0]["result"][0]["value"]["choices"][0] in NAMES for t in tasks)

    state = store.load_state()
    assert state.pending.round == 2 and state.pending.ids == ["u0", "u1"]
    _write(files["labelstudio_export"], [_task(1, batch[0], [_annotation("positive")]),
                                         _task(2, batch[1], [_annotation("negative")])])
    annotations = annotate_round(context, state, 2, batch, commit=commit)
    assert [(a.id, a.label, a.annotator) for a in annotations] == [("u0", 1, "human"), ("u1", 0, "human")]
    assert state.pending is None  # the labels are in: the annotation step clears its batch
