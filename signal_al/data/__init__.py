"""Tasks and their data: built-in offline corpora, hub tasks, local files, seeded splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from signal_al.core.errors import DataError, warn
from signal_al.data.config import DataConfig
from signal_al.data.hub import HUB_TASKS, load_hub_task
from signal_al.data.local import is_local_file, load_local_file
from signal_al.data.offline import OFFLINE_TASKS, load_offline_task
from signal_al.data.splits import pool_size_for, split_train_test, subsample, subsample_pool
from signal_al.data.task import TaskData, TaskSpec, TextDataset

TASK_NAMES = (*OFFLINE_TASKS, *HUB_TASKS)


def load_task(config: DataConfig, *, cache_root: Path | None = None) -> TaskData:
    """The task named by ``config.task`` with its train and test splits.

    Corpora without a test split are split with ``config.split_seed`` (fixed by default so
    that every run seed is evaluated on the same test rows). ``max_test_size`` then keeps a
    seeded subset of the test split.
    """
    task = config.task
    split_seed = config.split_seed
    if task in OFFLINE_TASKS:
        spec, corpus = load_offline_task(task, cache_root)
        train_rows, test_rows = split_train_test(corpus.labels, config.test_fraction, seed=split_seed,
                                                 stratify=config.stratify)
        train, test = corpus.subset(train_rows), corpus.subset(test_rows)
    elif task in HUB_TASKS:
        spec, train, test = load_hub_task(task)
    elif is_local_file(task):
        columns = dict(text_column=config.text_column, text_pair_column=config.text_pair_column,
                       label_column=config.label_column)
        spec, corpus = load_local_file(task, label_names=config.label_names, **columns)
        unused = [name for name, count in zip(spec.label_names, corpus.label_counts(spec.num_labels)) if count == 0]
        if unused:
            warn(f"data.label_names lists {', '.join(map(repr, unused))}, which no row of {task} has: the classifier "
                 "gets a class it never sees")
        if config.test_file:
            _, test = load_local_file(config.test_file, label_names=list(spec.label_names), **columns)
            train = corpus
            shared = set(zip(train.texts, train.text_pairs or [None] * len(train))) & set(
                zip(test.texts, test.text_pairs or [None] * len(test)))
            if shared:
                warn(f"{len(shared)} text(s) of {config.test_file} are in {task} too (e.g. {next(iter(shared))[0][:40]!r}): "
                     "the test accuracy counts texts the classifier may have trained on")
        else:
            train_rows, test_rows = split_train_test(corpus.labels, config.test_fraction, seed=split_seed,
                                                     stratify=config.stratify)
            train, test = corpus.subset(train_rows), corpus.subset(test_rows)
    else:
        check_task(task)
    if config.instruction:
        spec = dataclasses.replace(spec, instruction=config.instruction)
    if config.max_test_size is not None:
        test = test.subset(subsample(len(test), config.max_test_size, seed=split_seed))
    return TaskData(spec=spec, train=train, test=test)


def check_task(task: str) -> None:
    """A one-line DataError unless ``task`` is a built-in task or an existing data file (checked up
    front by a grid, so a typo stops it before hours of other runs, not when its turn comes)."""
    if task in OFFLINE_TASKS or task in HUB_TASKS:
        return
    if not is_local_file(task):
        raise DataError(f"data.task: '{task}' is not a built-in task ({', '.join(TASK_NAMES)}) "
                        "nor a file ending in .csv, .tsv, .jsonl, .json or .parquet")
    if not Path(task).is_file():
        raise DataError(f"{task}: file not found")


def real_pool(data: TaskData, config: DataConfig, *, seed: int) -> TextDataset:
    """The low-resource real pool: a seeded (stratified) subsample of the train split."""
    n_pool = pool_size_for(len(data.train), fraction=config.pool_fraction, size=config.pool_size)
    rows = subsample_pool(data.train.labels, n_pool, seed=seed, stratify=config.stratify)
    return data.train.subset(rows)


__all__ = [
    "TASK_NAMES",
    "TaskData",
    "TaskSpec",
    "TextDataset",
    "check_task",
    "load_task",
    "real_pool",
]
