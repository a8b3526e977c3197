"""Items of the unlabeled pool and the labeled set, each with its provenance.

Real items come from the task's train split (their labels stay hidden until annotated);
synthetic items come from the generator and remember the round and prompt that made them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from signal_al.data.task import TextDataset

Source = Literal["real", "synthetic"]


@dataclass
class Item:
    """A text (or text pair) that can be selected for annotation."""

    id: str
    text: str
    text_pair: str | None = None
    source: Source = "real"
    round: int = 0
    prompt: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Annotation:
    """A label given to an item: by whom and in which round."""

    id: str
    label: int
    round: int
    annotator: str

    def to_dict(self) -> dict:
        return asdict(self)


def real_items(data: TextDataset) -> list[Item]:
    """The real pool as items (labels are kept apart, by the ground-truth annotator)."""
    pairs = data.text_pairs or [None] * len(data)
    return [Item(id=i, text=t, text_pair=p, source="real") for i, t, p in zip(data.ids, data.texts, pairs)]


def as_dataset(items: list[Item], labels: list[int]) -> TextDataset:
    """Labeled items as a TextDataset for training."""
    pairs = [item.text_pair for item in items]
    return TextDataset(
        texts=[item.text for item in items],
        labels=labels,
        text_pairs=None if all(p is None for p in pairs) else [p or "" for p in pairs],
        ids=[item.id for item in items],
    )
