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

    ``n`` completions per prompt come from one request that shares the prompt (vLLM's
    ``n``, transformers' ``num_return_sequences``). With a ``seed``, prompt ``i``'s request
    is seeded with ``seed + i * n`` where the backend allows it (vLLM, which seeds its
    sample ``j`` with that seed ``+ j``), so every sample of a call has its own seed
    ``seed + i * n + j``, identical prompts still differ, and a rerun draws the same random
    numbers (outputs can still drift where batching changes the bf16 logits slightly).
    """

    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False
    ignore_eos: bool = False  # always generate max_tokens (benchmarks)
    n: int = 1  # completions per prompt

    def request_seed(self, prompt_index: int) -> int | None:
        """The seed of prompt ``prompt_index``'s request (None: unseeded)."""
        return None if self.seed is None else self.seed + prompt_index * self.n


@dataclass
class Completion:
    """One generated sequence for one prompt.

    ``error``: the backend refused this prompt (e.g. the server's ``400: maximum context
    length``); the generator drops it with a reason instead of ending the run.
    """

    text: str
    token_ids: list[int]
    prompt_token_ids: list[int]
    finish_reason: str | None = None
    logprobs: list[float] | None = None
    error: str | None = None


class GenerationBackend(ABC):
    """Generate completions, with the base model (``adapter=None``) or a loaded LoRA adapter."""

    name: str = "backend"

    @abstractmethod
    def generate(self, prompts: Sequence[str], params: SamplingParams, adapter: str | None = None) -> list[Completion]:
        """``params.n`` completions per prompt, prompt-major (all samples of prompt 0 first)."""

    @abstractmethod
    def load_adapter(self, name: str, path: str | Path) -> None:
        """Make the LoRA adapter in ``path`` usable as ``adapter=name`` (a new name per round)."""

    def close(self) -> None:
        """Release resources (processes, models)."""

    def __enter__(self) -> "GenerationBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
