"""The paper's in-context generation prompt.

    Based on the following examples of movie reviews, come up with a new example:
    Example 1: ...
    Example 2: ...
    New Example:
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from signal_al.data.task import TaskSpec


def build_prompt(spec: TaskSpec, examples: Sequence[str]) -> str:
    """The instruction, the numbered in-context examples, then ``New Example:``."""
    lines = [spec.instruction]
    lines += [f"Example {i}: {text}" for i, text in enumerate(examples, start=1)]
    lines.append("New Example:")
    return "\n".join(lines)


def sample_examples(texts: Sequence[str], num_examples: int, rng: np.random.Generator) -> list[str]:
    """``num_examples`` distinct texts drawn at random (all of them when there are fewer)."""
    count = min(num_examples, len(texts))
    return [texts[i] for i in rng.choice(len(texts), size=count, replace=False)]


def apply_chat_template(tokenizer: Any, prompt: str) -> str:
    """The prompt as a user turn in the model's chat template, or unchanged when it has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt
