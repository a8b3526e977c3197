"""What a classification task is: its label set, text shape and generation instruction."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    """A text (or text-pair) classification task.

    ``instruction`` opens every generation prompt (SIGnAL paper: "Based on the following
    examples of movie reviews, come up with a new example:").
    """

    name: str
    label_names: tuple[str, ...]
    domain: str
    is_pair: bool = False
    instruction: str = ""

    def __post_init__(self) -> None:
        if not self.instruction:
            object.__setattr__(
                self, "instruction", f"Based on the following examples of {self.domain}, come up with a new example:"
            )

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass
class TextDataset:
    """Texts (and optional second texts) with integer labels in ``[0, num_labels)``."""

    texts: list[str]
    labels: np.ndarray
    text_pairs: list[str] | None = None
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not self.ids:
            self.ids = [str(i) for i in range(len(self.texts))]
        if len(self.labels) != len(self.texts) or len(self.ids) != len(self.texts):
            raise ValueError("texts, labels and ids must have the same length")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError("text_pairs must have the same length as texts")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: np.ndarray | list[int]) -> "TextDataset":
        indices = [int(i) for i in indices]
        return TextDataset(
            texts=[self.texts[i] for i in indices],
            labels=self.labels[indices],
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in indices],
            ids=[self.ids[i] for i in indices],
        )

    def label_counts(self, num_labels: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=num_labels)


@dataclass
class TaskData:
    """A task with its train split (where the real pool is drawn from) and its test split."""

    spec: TaskSpec
    train: TextDataset
    test: TextDataset

    def summary(self) -> dict:
        """Sizes and label counts of both splits, for logs and ``data describe``."""
        names = self.spec.label_names
        return {
            "task": self.spec.name,
            "pair": self.spec.is_pair,
            "labels": list(names),
            "train_size": len(self.train),
            "test_size": len(self.test),
            "train_label_counts": dict(zip(names, self.train.label_counts(len(names)).tolist())),
            "test_label_counts": dict(zip(names, self.test.label_counts(len(names)).tolist())),
        }

