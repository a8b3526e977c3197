"""The one interface every generation backend implements.

Backends take prompts that are already in their final text form (chat template applied)
and return completions with token ids, so the rest of the code never knows where
generation runs: a vLLM server over HTTP, vLLM in-process, or transformers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings, always sent explicitly (servers would otherwise use the model's defaults).

    With a ``seed``, prompt ``i`` is sampled with ``seed + i`` where the backend allows it
    (vLLM), so identical prompts still differ and a rerun draws the same random numbers
    (outputs can still drift where batching changes the bf16 logits slightly).
    """

    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False
    ignore_eos: bool = False  # always generate max_tokens (benchmarks)


@dataclass
class Completion:
    """One generated sequence for one prompt."""

    text: str
    token_ids: list[int]
    prompt_token_ids: list[int]
    finish_reason: str | None = None
    logprobs: list[float] | None = None


class GenerationBackend(ABC):
    """Generate completions, with the base model (``adapter=None``) or a loaded LoRA adapter."""

    name: str = "backend"

    @abstractmethod
    def generate(self, prompts: Sequence[str], params: SamplingParams, adapter: str | None = None) -> list[Completion]:
        """One completion per prompt, in prompt order."""

    @abstractmethod
    def load_adapter(self, name: str, path: str | Path) -> None:
        """Make the LoRA adapter in ``path`` usable as ``adapter=name`` (a new name per round)."""

    def close(self) -> None:
        """Release resources (processes, models)."""

    def __enter__(self) -> "GenerationBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
