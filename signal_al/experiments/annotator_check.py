"""How often is the model annotator wrong on the synthetic items it labeled?

Beyond the real pool every new label of a SIGnAL run is a synthetic item labeled by the model
annotator (a classifier trained on the task's train split), so its errors become the
classifier's training noise. There is no ground truth for generated text; the check compares
the run's labels with a stronger reference annotator (the same recipe trained longer, by
default full epochs instead of ``active_learning.annotator_max_steps``) and reports the
disagreement rate with a Wilson interval. The same two annotators' disagreement on the task's
test split, real text that neither trained on, is the rate to expect on real text: a higher
rate on synthetic items means generated text is harder to label (or off the task). (The run's
real pool items cannot serve as that control: both annotators trained on the train split they
come from.)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from signal_al.core.errors import UserError
from signal_al.core.run_layout import CONFIG_FILE, LABELED_FILE
from signal_al.core.run_state import Item
from signal_al.engine.store import RunStore

__all__ = ["AnnotatorCheck", "check_run", "disagreement", "find_runs", "labeled_rows", "proportion",
           "wilson_interval"]


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one).

    >>> low, high = wilson_interval(10, 100)
    >>> round(low, 4), round(high, 4)
    (0.0552, 0.1744)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def disagreement(labels: Sequence[int], reference: Sequence[int]) -> dict:
    """Share of items where the two label lists differ, with its 95 % Wilson interval.

    >>> disagreement([0, 1, 1, 0], [0, 1, 0, 0])["rate"]
    0.25
    """
    a, b = np.asarray(labels), np.asarray(reference)
    if a.shape != b.shape:
        raise ValueError(f"label lists differ in length: {a.size} and {b.size}")
    return proportion(int((a != b).sum()), int(a.size))


def proportion(disagree: int, n: int) -> dict:
    """``disagree`` of ``n`` as a rate with its 95 % Wilson interval (rate None when n is 0).

    >>> proportion(1, 4)["rate"]
    0.25
    """
    low, high = wilson_interval(disagree, n)
    return {"n": n, "disagree": disagree, "rate": disagree / n if n else None, "low": low, "high": high}


def find_runs(folders: Sequence[Path]) -> list[Path]:
    """The run folders (holding the labeled set and the config) under each folder, any depth."""
    runs: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{folder}: no such folder")
        found = sorted(p.parent for p in folder.rglob(LABELED_FILE) if (p.parent / CONFIG_FILE).is_file())
        if not found:
            raise UserError(f"{folder}: no run folder under it (a run folder holds {LABELED_FILE} and {CONFIG_FILE})")
        runs += [run for run in found if run not in runs]
    return runs


def labeled_rows(run_dir: Path) -> list[dict]:
    """The run's labeled items as written by the loop (one JSON object per line)."""
    from signal_al.core.io_utils import json_object_lines

    path = run_dir / LABELED_FILE
    return [row for _, row in json_object_lines(path.read_text(encoding="utf-8").splitlines(), path)]


def _items(rows: list[dict]) -> list[Item]:
    return [Item(id=row["id"], text=row["text"], text_pair=row.get("text_pair"), source=row["source"])
            for row in rows]


@dataclass
class AnnotatorCheck:
    """One run: its synthetic items' labels against the reference, and how often the two
    annotators disagree on the task's test split (real text held out from both)."""

    run: str
    task: str
    synthetic: dict
    test: dict
    reproduced: float | None
    annotator_test_accuracy: float
    reference_test_accuracy: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_run(run_dir: Path, reference_steps: int | None, *, progress: bool = True,
              log: Callable[[str], None] = print, annotators: dict | None = None) -> AnnotatorCheck:
    """Relabel the run's synthetic items with its own annotator and the reference.

    ``test``: the two annotators' disagreement on the test split, the rate to expect on real
    text of the task (the run's real pool items cannot serve: both annotators trained on the
    train split they come from). ``reproduced``: share of stored labels the run's annotator
    gives again (1.0 unless the annotator changed since the run). ``annotators`` keeps the loaded
    annotators (:class:`LoadedAnnotator`, keyed by task and recipe) between runs.
    """
    config = RunStore(run_dir).saved_config()
    synthetic = [row for row in labeled_rows(run_dir) if row["source"] == "synthetic"]
    cache = {} if annotators is None else annotators
    own_cap = config.active_learning.annotator_max_steps
    own = _annotator(config, own_cap, cache, progress)
    reference = _annotator(config, reference_steps, cache, progress)
    if reference_steps == own_cap:
        log(f"{run_dir}: the reference is the run's own annotator recipe ({reference_steps} steps); "
            "pass --reference-steps to compare with a stronger one")
    stored = [int(row["label"]) for row in synthetic]
    relabeled = own.annotator.annotate(_items(synthetic))
    return AnnotatorCheck(
        run=str(run_dir), task=config.data.task,
        synthetic=disagreement(stored, reference.annotator.annotate(_items(synthetic))),
        test=disagreement(own.test_labels, reference.test_labels),
        reproduced=float(np.mean(np.asarray(stored) == relabeled)) if stored else None,
        annotator_test_accuracy=own.annotator.info.test_accuracy,
        reference_test_accuracy=reference.annotator.info.test_accuracy)


def _key(config: Any, max_steps: int | None) -> tuple:
    return (config.data.task, json.dumps(dataclasses.asdict(config.classifier), sort_keys=True),
            json.dumps(dataclasses.asdict(config.data), sort_keys=True, default=str), max_steps)


@dataclass
class LoadedAnnotator:
    """A model annotator with the test split of its task; its labels of that split are computed
    once, on first use, and shared by every run of the same task and recipe."""

    annotator: Any
    test: Any

    @functools.cached_property
    def test_labels(self) -> list[int]:
        pairs = self.test.text_pairs or [None] * len(self.test.texts)
        return self.annotator.annotate([Item(id=i, text=t, text_pair=p)
                                        for i, t, p in zip(self.test.ids, self.test.texts, pairs)])


def _annotator(config: Any, max_steps: int | None, cache: dict, progress: bool) -> LoadedAnnotator:
    """The model annotator of the run's task and classifier recipe, capped at ``max_steps`` (None: full
    epochs): trained once and cached on disk like the loop's, and kept in ``cache`` between runs."""
    from signal_al.engine.context import RunContext

    key = _key(config, max_steps)
    if key not in cache:
        capped = dataclasses.replace(config, active_learning=dataclasses.replace(
            config.active_learning, annotator_max_steps=max_steps))
        context = RunContext(capped, progress=progress, log=lambda _: None)
        cache[key] = LoadedAnnotator(context.model_annotator(), context.data.test)
    return cache[key]
