"""Paper tasks from the Hugging Face hub (SST-2, AG News, QNLI), for users who have the hub.

GLUE's test labels are hidden, so, as in the paper, GLUE validation is the test split for
SST-2 and QNLI. ``datasets`` is imported only when a hub task is asked for.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from signal_al.core.errors import DataError
from signal_al.core.progress import is_terminal
from signal_al.data.task import TaskSpec, TextDataset


@dataclass(frozen=True)
class HubTask:
    spec: TaskSpec
    path: str
    subset: str | None
    train_split: str
    test_split: str
    text_column: str
    text_pair_column: str | None = None
    label_column: str = "label"


HUB_TASKS = {
    task.spec.name: task
    for task in (
        HubTask(TaskSpec("sst2", ("negative", "positive"), "movie reviews"),
                "nyu-mll/glue", "sst2", "train", "validation", "sentence"),
        HubTask(TaskSpec("ag_news", ("World", "Sports", "Business", "Sci/Tech"), "news articles"),
                "fancyzhx/ag_news", None, "train", "test", "text"),
        HubTask(TaskSpec("qnli", ("entailment", "not_entailment"), "question and answer-sentence pairs", is_pair=True,
                         instruction="Based on the following examples of questions paired with a sentence that may "
                         "answer them, come up with a new example:"),
                "nyu-mll/glue", "qnli", "train", "validation", "question", "sentence"),
    )
}


def load_hub_task(name: str) -> tuple[TaskSpec, TextDataset, TextDataset]:
    """(spec, train, test) of a paper task, downloaded through ``datasets``."""
    task = HUB_TASKS[name]
    try:
        from datasets import load_dataset
        from datasets.utils import disable_progress_bars

        if not is_terminal(sys.stderr):  # download and split bars redraw ten times a second; a log keeps each
            disable_progress_bars()
        splits = load_dataset(task.path, task.subset)
    except Exception as exc:  # noqa: BLE001 - offline, auth and network errors all end here
        message = " ".join(str(exc).split())[:300]
        raise DataError(
            f"cannot load hub task '{name}' ({task.path}{'/' + task.subset if task.subset else ''}): {message}. "
            "Hub tasks need network access to the Hugging Face hub; offline, use rt-movies or vader-sources."
        ) from None

    def convert(split: str) -> TextDataset:
        rows = splits[split]
        return TextDataset(
            texts=[str(t).strip() for t in rows[task.text_column]],
            labels=rows[task.label_column],
            text_pairs=[str(t).strip() for t in rows[task.text_pair_column]] if task.text_pair_column else None,
            ids=[f"{split}:{i}" for i in range(len(rows))],
        )

    return task.spec, convert(task.train_split), convert(task.test_split)
