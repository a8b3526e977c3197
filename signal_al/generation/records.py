"""One generated candidate with everything later steps need.

PPO scores the exact token sequences the generator produced, so a candidate keeps the
prompt and completion token ids as well as the texts; the run log keeps every raw output
and why it was dropped, so cleaning can be audited.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from signal_al.generation.cleaning import PROMPT_TOO_LONG, REQUEST_REJECTED


@dataclass
class Candidate:
    """One sampled generation for a prompt: raw and cleaned output, token ids, provenance."""

    prompt: str  # instruction + in-context examples + "New Example:"
    prompt_text: str  # what the model saw (chat template applied)
    prompt_token_ids: list[int]
    completion_token_ids: list[int]
    raw_output: str
    text: str | None  # cleaned example; None when dropped
    text_pair: str | None = None
    drop_reason: str | None = None
    adapter: str | None = None  # served adapter name; None = base model
    round: int | None = None
    label: int | None = None  # requested label (label-conditioned prompts only)
    example_ids: list[str] = field(default_factory=list)  # in-context examples (real pool ids)
    seed: int | None = None
    finish_reason: str | None = None
    logprobs: list[float] | None = None  # per completion token, when requested
    # Sample `sample` of the call's prompt number `group` (generator.samples_per_prompt); rows
    # written before groups existed load with group None and sample 0 (one sample per prompt).
    group: int | None = None
    sample: int = 0

    @property
    def kept(self) -> bool:
        return self.drop_reason is None and self.text is not None

    @property
    def generated(self) -> bool:
        """Whether the model produced this completion: False when its prompt could not fit the context
        or the backend refused it (no tokens: such a candidate cannot be a PPO rollout)."""
        return bool(self.prompt_token_ids) and self.drop_reason not in (PROMPT_TOO_LONG, REQUEST_REJECTED)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "Candidate":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def write_jsonl(candidates: Iterable[Candidate], path: str | Path, *, append: bool = True) -> None:
    """Append candidates (kept and dropped) to a JSON-lines log."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8") as handle:
        for candidate in candidates:
            handle.write(json.dumps(candidate.to_dict(), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Candidate]:
    with open(path, encoding="utf-8") as handle:
        return [Candidate.from_dict(json.loads(line)) for line in handle if line.strip()]
