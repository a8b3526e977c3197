"""What a run persists in ``state.json``, and the one reader of that file.

The state is a run's commit point: written whole, atomically, after every round (the engine's run
store writes it). Everything that reads a run folder (the engine resuming, ``signal-al score``,
``serve-reward``, the verl hook, generator evaluation) reads it here, through :func:`read_state`, so
a change to the format is a change of this module and of nothing else.

Items and annotations are the pool and the labeled set with their provenance. Two parts belong to
one round and are reset when it commits, each by the part of the engine that owns it: the batch
out for human annotation (:class:`PendingBatch`, the annotation step) and the generator plug-in's
candidates with their scores (:class:`GenerationRound`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from signal_al.core.errors import UserError
from signal_al.core.run_layout import PREVIOUS_STATE_FILE, STATE_FILE

__all__ = ["Annotation", "GenerationRound", "Item", "PendingBatch", "RunState", "Source", "read_state", "text_pairs"]

Source = Literal["real", "synthetic"]


@dataclass
class Item:
    """A text (or text pair) that can be selected for annotation: a real pool item, or a synthetic one
    that remembers the round and prompt that made it."""

    id: str
    text: str
    text_pair: str | None = None
    source: Source = "real"
    round: int = 0
    prompt: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def text_pairs(rows: Sequence[Any]) -> list[str] | None:
    """The second segments of ``rows`` (items, or anything with a ``text_pair``), None when no row has one
    (a single-text task).

    >>> text_pairs([Item("a", "x"), Item("b", "y", "z")]), text_pairs([Item("a", "x")])
    (['', 'z'], None)
    """
    pairs = [row.text_pair for row in rows]
    return None if all(p is None for p in pairs) else [p or "" for p in pairs]


@dataclass
class Annotation:
    """A label given to an item: by whom and in which round."""

    id: str
    label: int
    round: int
    annotator: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PendingBatch:
    """A round's batch out for human annotation: its item ids and the run-relative file a person fills."""

    round: int
    ids: list[str]
    file: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationRound:
    """The generator plug-in's part of a round, from its candidates until the round commits: the
    candidates as the rows it wrote to ``candidates.jsonl`` and their scores from the round's one
    classifier pass (None until selection scored them)."""

    round: int
    candidates: list[dict] = field(default_factory=list)
    scores: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunState:
    """Everything a run needs to continue: written whole, atomically, after every round."""

    round: int = -1
    pool_size: int = 0
    items: list[Item] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    checkpoint: str | None = None
    pending: PendingBatch | None = None
    finished: bool = False
    adapter: str | None = None  # run-relative folder of the generator's latest adapter (SIGnAL)
    generation: GenerationRound | None = None

    def to_dict(self) -> dict:
        return {"round": self.round, "pool_size": self.pool_size, "items": [i.to_dict() for i in self.items],
                "annotations": [a.to_dict() for a in self.annotations], "metrics": self.metrics,
                "checkpoint": self.checkpoint, "pending": None if self.pending is None else self.pending.to_dict(),
                "finished": self.finished, "adapter": self.adapter,
                "generation": None if self.generation is None else self.generation.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "RunState":
        pending, generation = data["pending"], data.get("generation")
        return cls(round=data["round"], pool_size=data["pool_size"], items=[Item(**i) for i in data["items"]],
                   annotations=[Annotation(**a) for a in data["annotations"]], metrics=data["metrics"],
                   checkpoint=data["checkpoint"], pending=None if pending is None else PendingBatch(**pending),
                   finished=data["finished"], adapter=data.get("adapter"),
                   generation=None if generation is None else GenerationRound(**generation))

    @property
    def started(self) -> bool:
        """Whether the run has anything to keep: a committed round, a label, a batch out for annotation
        or generated candidates. A run that stopped before its first commit has not, so a corrected
        command may start it again instead of resuming its config."""
        return (self.round >= 0 or bool(self.annotations) or self.pending is not None
                or self.generation is not None or self.finished)

    @property
    def labeled_ids(self) -> set[str]:
        return {a.id for a in self.annotations}

    def unlabeled_count(self) -> int:
        return len(self.items) - len(self.annotations)

    def items_by_id(self) -> dict[str, Item]:
        """Every item under its id (the pool grows, so this is built when asked)."""
        return {item.id: item for item in self.items}

    def labeled_items(self, up_to_round: int | None = None) -> list[Item]:
        """The labeled items in the order they were labeled (only those labeled by round ``up_to_round``)."""
        items = self.items_by_id()
        return [items[a.id] for a in self.annotations if up_to_round is None or a.round <= up_to_round]

    def unlabeled_items(self) -> list[Item]:
        """The items not labeled yet, in pool order."""
        labeled = self.labeled_ids
        return [item for item in self.items if item.id not in labeled]


def read_state(run_dir: str | Path) -> RunState | None:
    """The run's saved state, None when the run has none yet; a damaged file is a one-line
    :class:`~signal_al.core.errors.UserError` that says how to recover from the previous round's."""
    run_dir = Path(run_dir)
    path = run_dir / STATE_FILE
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: not a file; move it away to use {run_dir} as a run folder")
    if not path.is_file():
        return None
    try:
        return RunState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        hint = (f"; the previous round's state is {run_dir / PREVIOUS_STATE_FILE}: copy it over {path} "
                "to continue from there" if (run_dir / PREVIOUS_STATE_FILE).is_file() else "")
        raise UserError(f"{path}: not a readable run state ({type(exc).__name__}: {exc}){hint}") from None
