"""Who labels the round's selected items: the hidden ground truth for real pool items, the
model annotator for synthetic ones, or a person through a batch file.

A human round exports its batch, records it as ``state.pending`` and stops the run with
:class:`AnnotationRequired`; the resumed run imports the filled file. The batch is written twice:
``round_NNN.csv`` for spreadsheets and ``round_NNN.labelstudio.json``, Label Studio tasks with the
selecting classifier's prediction as a pre-annotation (plus ``labelstudio_config.xml``, the labeling
interface). A Label Studio JSON export saved as ``round_NNN.labelstudio-export.json`` is imported
in preference to the CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from signal_al.core.run_layout import annotation_files
from signal_al.core.run_state import Annotation, Item, PendingBatch, RunState
from signal_al.engine.annotation.labelstudio import export_tasks, import_annotations
from signal_al.engine.annotation.oracle import AnnotationRequired, GroundTruthAnnotator, export_batch, import_labels
from signal_al.engine.context import RunContext

__all__ = ["annotate_round", "batch_files", "checkpoint_predictions", "pending_items"]

Predictions = Callable[[Sequence[Item]], list[tuple[int, float]]]


def batch_files(run_dir: Path, round_index: int) -> dict[str, Path]:
    """The round's annotation files in ``run_dir``: ``csv``, ``labelstudio`` (tasks) and ``labelstudio_export``."""
    return {kind: run_dir / name for kind, name in annotation_files(round_index).items()}


def checkpoint_predictions(context: RunContext, checkpoint: str, items: Sequence[Item]) -> list[tuple[int, float]]:
    """``(label, probability)`` of the run's classifier checkpoint for each item (Label Studio
    pre-annotations), with the run's tokenizer and inference settings."""
    from transformers import AutoModelForSequenceClassification

    from signal_al.classifier.inference import predict_rows

    model = AutoModelForSequenceClassification.from_pretrained(context.run_dir / checkpoint).to(context.device)
    out = predict_rows(model, context.tokenizer, items, context.config.classifier, device=context.device)
    return [(int(row.argmax()), float(row.max())) for row in out.probs]


def pending_items(state: RunState, round_index: int) -> list[Item] | None:
    """The batch a person is labeling for this round, or None."""
    if state.pending is None or state.pending.round != round_index:
        return None
    items = state.items_by_id()
    return [items[i] for i in state.pending.ids]


def annotate_round(context: RunContext, state: RunState, round_index: int, items: Sequence[Item], *,
                   commit: Callable[[RunState], None], predictions: Predictions | None = None) -> list[Annotation]:
    """Labels for ``items``: the hidden ground truth for real items, the model annotator (trained only
    when a synthetic item needs a label) for synthetic ones, or a person (``active_learning.annotator:
    human``). A human batch is recorded as ``state.pending`` and persisted with ``commit(state)`` before
    the run stops; its labels, once filled in, clear it. ``predictions(items)`` gives the Label Studio
    pre-annotations; by default the classifier that selected the batch (``state.checkpoint``) predicts
    them, and round 0 has none."""
    label_names = tuple(context.label_names)
    if context.config.active_learning.annotator == "human":
        run_dir = context.run_dir
        files = batch_files(run_dir, round_index)
        ids = [item.id for item in items]
        if state.pending is None:
            export_batch(list(items), files["csv"], label_names)
            if predictions is None and state.checkpoint:
                predicted = checkpoint_predictions(context, state.checkpoint, items)
            else:
                predicted = predictions(items) if predictions is not None else None
            export_tasks(list(items), files["labelstudio"], label_names, round_index=round_index, predictions=predicted)
            state.pending = PendingBatch(round_index, ids, annotation_files(round_index)["csv"])
            commit(state)
            raise AnnotationRequired(files["csv"], len(items), run_dir, labelstudio=files["labelstudio"])
        if files["labelstudio_export"].is_file():
            labels = import_annotations(files["labelstudio_export"], ids, label_names)
        else:
            labels = import_labels(files["csv"], ids, label_names)
        state.pending = None
        return [Annotation(i, labels[i], round_index, "human") for i in ids]
    real = [item for item in items if item.source == "real"]
    synthetic = [item for item in items if item.source == "synthetic"]
    given = dict(zip([i.id for i in real], GroundTruthAnnotator(context.hidden_labels).annotate(real)))
    if synthetic:
        given.update(zip([i.id for i in synthetic], context.model_annotator().annotate(synthetic)))
    return [Annotation(item.id, given[item.id], round_index, "ground_truth" if item.source == "real" else "model")
            for item in items]
