"""A task's rows as pool items and labeled items as a dataset: real items come from the task's train
split (their labels stay hidden until annotated). The items themselves are part of a run's state
(:class:`~signal_al.core.run_state.Item`)."""

from __future__ import annotations

from signal_al.core.run_state import Item, text_pairs
from signal_al.data.task import TextDataset


def real_items(data: TextDataset) -> list[Item]:
    """The real pool as items (labels are kept apart, by the ground-truth annotator)."""
    pairs = data.text_pairs or [None] * len(data)
    return [Item(id=i, text=t, text_pair=p, source="real") for i, t, p in zip(data.ids, data.texts, pairs)]


def as_dataset(items: list[Item], labels: list[int]) -> TextDataset:
    """Labeled items as a TextDataset for training."""
    return TextDataset(texts=[item.text for item in items], labels=labels, text_pairs=text_pairs(items),
                       ids=[item.id for item in items])
