"""Who labels the round's selected items: the hidden ground truth for real pool items, the
model annotator for synthetic ones, or a person through a batch file.

A human round exports its batch, records it as ``state.pending`` and stops the run with
:class:`AnnotationRequired`; the resumed run imports the filled file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from signal_al.data.pools import Annotation, Item
from signal_al.oracle import AnnotationRequired, GroundTruthAnnotator, export_batch, import_labels
from signal_al.run_store import RunState

__all__ = ["ANNOTATION_DIR", "annotate_round", "pending_items"]

ANNOTATION_DIR = "annotation"


def pending_items(state: RunState, round_index: int) -> list[Item] | None:
    """The batch a person is labeling for this round, or None."""
    if state.pending is None or state.pending["round"] != round_index:
        return None
    items = {item.id: item for item in state.items}
    return [items[i] for i in state.pending["ids"]]


def annotate_round(state: RunState, round_index: int, items: Sequence[Item], *, human: bool, run_dir: Path,
                   label_names: Sequence[str], hidden_labels: dict[str, int], model_annotator: Callable[[], Any],
                   commit: Callable[[RunState], None]) -> list[Annotation]:
    """Labels for ``items``. ``model_annotator()`` is only called when a synthetic item needs a
    label; ``commit(state)`` persists the pending human batch before the run stops."""
    if human:
        batch_file = run_dir / ANNOTATION_DIR / f"round_{round_index:03d}.csv"
        ids = [item.id for item in items]
        if state.pending is None:
            export_batch(list(items), batch_file, tuple(label_names))
            state.pending = {"round": round_index, "ids": ids, "file": str(batch_file.relative_to(run_dir))}
            commit(state)
            raise AnnotationRequired(batch_file, len(items), run_dir)
        labels = import_labels(batch_file, ids, tuple(label_names))
        return [Annotation(i, labels[i], round_index, "human") for i in ids]
    real = [item for item in items if item.source == "real"]
    synthetic = [item for item in items if item.source == "synthetic"]
    given = dict(zip([i.id for i in real], GroundTruthAnnotator(hidden_labels).annotate(real)))
    if synthetic:
        given.update(zip([i.id for i in synthetic], model_annotator().annotate(synthetic)))
    return [Annotation(item.id, given[item.id], round_index, "ground_truth" if item.source == "real" else "model")
            for item in items]
