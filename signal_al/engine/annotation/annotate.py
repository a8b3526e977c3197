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
from typing import Any, Callable, Sequence

from signal_al.data.pools import Annotation, Item
from signal_al.engine.annotation.labelstudio import export_tasks, import_annotations
from signal_al.engine.annotation.oracle import AnnotationRequired, GroundTruthAnnotator, export_batch, import_labels
from signal_al.engine.store import RunState

__all__ = ["ANNOTATION_DIR", "annotate_round", "batch_files", "checkpoint_predictions", "pending_items"]

ANNOTATION_DIR = "annotation"


def batch_files(run_dir: Path, round_index: int) -> dict[str, Path]:
    """The round's annotation files: ``csv``, ``labelstudio`` (tasks) and ``labelstudio_export``."""
    folder = run_dir / ANNOTATION_DIR
    stem = f"round_{round_index:03d}"
    return {"csv": folder / f"{stem}.csv", "labelstudio": folder / f"{stem}.labelstudio.json",
            "labelstudio_export": folder / f"{stem}.labelstudio-export.json"}


def checkpoint_predictions(run_dir: Path, checkpoint: str, items: Sequence[Item]) -> list[tuple[int, float]]:
    """``(label, probability)`` of the run's classifier checkpoint for each item (Label Studio
    pre-annotations); the tokenizer and inference settings come from the run's config."""
    from transformers import AutoModelForSequenceClassification

    from signal_al.classifier.inference import predict
    from signal_al.engine.context import RunContext
    from signal_al.engine.store import saved_config

    config = saved_config(run_dir)
    context = RunContext(config, progress=False, log=lambda _: None)
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / checkpoint).to(context.device)
    pairs = [item.text_pair for item in items]
    out = predict(model, context.tokenizer, [item.text for item in items],
                  None if all(p is None for p in pairs) else [p or "" for p in pairs],
                  batch_size=config.classifier.eval_batch_size, max_length=config.classifier.max_length,
                  device=context.device)
    return [(int(row.argmax()), float(row.max())) for row in out.probs]


def pending_items(state: RunState, round_index: int) -> list[Item] | None:
    """The batch a person is labeling for this round, or None."""
    if state.pending is None or state.pending["round"] != round_index:
        return None
    items = {item.id: item for item in state.items}
    return [items[i] for i in state.pending["ids"]]


def annotate_round(state: RunState, round_index: int, items: Sequence[Item], *, human: bool, run_dir: Path,
                   label_names: Sequence[str], hidden_labels: dict[str, int], model_annotator: Callable[[], Any],
                   commit: Callable[[RunState], None],
                   predictions: Callable[[Sequence[Item]], list[tuple[int, float]]] | None = None
                   ) -> list[Annotation]:
    """Labels for ``items``. ``model_annotator()`` is only called when a synthetic item needs a
    label; ``commit(state)`` persists the pending human batch before the run stops.
    ``predictions(items)`` gives the Label Studio pre-annotations; by default the classifier that
    selected the batch (``state.checkpoint``) predicts them, and round 0 has none."""
    if human:
        files = batch_files(run_dir, round_index)
        ids = [item.id for item in items]
        if state.pending is None:
            export_batch(list(items), files["csv"], tuple(label_names))
            if predictions is None and state.checkpoint:
                predicted = checkpoint_predictions(run_dir, state.checkpoint, items)
            else:
                predicted = predictions(items) if predictions is not None else None
            export_tasks(list(items), files["labelstudio"], tuple(label_names), round_index=round_index,
                         predictions=predicted)
            state.pending = {"round": round_index, "ids": ids, "file": str(files["csv"].relative_to(run_dir))}
            commit(state)
            raise AnnotationRequired(files["csv"], len(items), run_dir, labelstudio=files["labelstudio"])
        if files["labelstudio_export"].is_file():
            labels = import_annotations(files["labelstudio_export"], ids, tuple(label_names))
        else:
            labels = import_labels(files["csv"], ids, tuple(label_names))
        return [Annotation(i, labels[i], round_index, "human") for i in ids]
    real = [item for item in items if item.source == "real"]
    synthetic = [item for item in items if item.source == "synthetic"]
    given = dict(zip([i.id for i in real], GroundTruthAnnotator(hidden_labels).annotate(real)))
    if synthetic:
        given.update(zip([i.id for i in synthetic], model_annotator().annotate(synthetic)))
    return [Annotation(item.id, given[item.id], round_index, "ground_truth" if item.source == "real" else "model")
            for item in items]
