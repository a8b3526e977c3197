"""The paper's in-context generation prompt, and two optional variants.

    Based on the following examples of movie reviews, come up with a new example:
    Example 1: ...
    Example 2: ...
    New Example:

Off by default (beyond the paper): *label-conditioned* prompts ask for an example of one
label and show in-context examples of that label only; *cluster-diverse* prompts draw one
in-context example per embedding cluster of the real pool instead of uniformly at random.
Pair tasks show each example as ``Text 1: ... Text 2: ...`` so both fields come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from signal_al.data.task import TaskSpec, TextDataset

Example = str | tuple[str, str]


@dataclass
class Prompt:
    """A prompt (before any chat template) and what it was built from."""

    text: str
    example_ids: list[str] = field(default_factory=list)
    label: int | None = None
    examples: list[Example] = field(default_factory=list)  # the in-context examples shown (to rebuild it shorter)
    instruction: str | None = None  # None: the task's instruction


def format_example(example: Example) -> str:
    if isinstance(example, tuple):
        return f"Text 1: {example[0]} Text 2: {example[1]}"
    return example


def label_instruction(spec: TaskSpec, label_name: str) -> str:
    """The task instruction asking for an example of one label."""
    base = spec.instruction.rstrip().rstrip(":").rstrip()
    return f'{base} whose label is "{label_name}":'


def build_prompt(spec: TaskSpec, examples: Sequence[Example], *, instruction: str | None = None) -> str:
    """The instruction, the numbered in-context examples, then ``New Example:``."""
    lines = [instruction or spec.instruction]
    lines += [f"Example {i}: {format_example(example)}" for i, example in enumerate(examples, start=1)]
    lines.append("New Example:")
    return "\n".join(lines)


def sample_examples(texts: Sequence[str], num_examples: int, rng: np.random.Generator) -> list[str]:
    """``num_examples`` distinct texts drawn at random (all of them when there are fewer)."""
    count = min(num_examples, len(texts))
    return [texts[i] for i in rng.choice(len(texts), size=count, replace=False)]


def cluster_assignments(embeddings: np.ndarray, num_clusters: int, seed: int = 0) -> np.ndarray:
    """k-means cluster id per pool item, computed once per round for cluster-diverse prompts."""
    from sklearn.cluster import KMeans

    num_clusters = max(1, min(num_clusters, len(embeddings)))
    return KMeans(n_clusters=num_clusters, n_init=3, random_state=seed).fit_predict(np.asarray(embeddings))


def _diverse_rows(candidates: np.ndarray, clusters: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """One random row from each of ``count`` random clusters (uniform rows if clusters run out)."""
    ids = rng.permutation(np.unique(clusters[candidates]))[:count]
    rows = [rng.choice(candidates[clusters[candidates] == cid]) for cid in ids]
    if len(rows) < count:
        rest = np.setdiff1d(candidates, rows)
        rows += list(rng.choice(rest, size=min(count - len(rows), len(rest)), replace=False))
    return np.asarray(rows, dtype=np.int64)


def make_prompts(
    spec: TaskSpec, pool: TextDataset, num_prompts: int, num_in_context: int, rng: np.random.Generator, *,
    label_conditioned: bool = False, clusters: np.ndarray | None = None,
) -> list[Prompt]:
    """``num_prompts`` prompts with in-context examples from the real pool.

    ``label_conditioned``: labels cycle over those present in the pool (balanced), and each
    prompt shows examples of its label only. ``clusters`` (one id per pool row, see
    :func:`cluster_assignments`): one in-context example per cluster.
    """
    if len(pool) == 0:
        raise ValueError("the real pool is empty: no in-context examples to draw")
    all_rows = np.arange(len(pool))
    present = np.unique(pool.labels)
    labels = np.resize(rng.permutation(present), num_prompts) if label_conditioned else [None] * num_prompts
    prompts = []
    for label in labels:
        candidates = all_rows if label is None else all_rows[pool.labels == label]
        count = min(num_in_context, len(candidates))
        if clusters is not None:
            rows = _diverse_rows(candidates, np.asarray(clusters), count, rng)
        else:
            rows = rng.choice(candidates, size=count, replace=False)
        examples: list[Example] = [
            pool.texts[r] if pool.text_pairs is None or not spec.is_pair else (pool.texts[r], pool.text_pairs[r])
            for r in rows
        ]
        instruction = None if label is None else label_instruction(spec, spec.label_names[int(label)])
        prompts.append(Prompt(build_prompt(spec, examples, instruction=instruction),
                              [pool.ids[r] for r in rows], None if label is None else int(label), examples,
                              instruction))
    return prompts


def apply_chat_template(tokenizer: Any, prompt: str) -> str:
    """The prompt as a user turn in the model's chat template, or unchanged when it has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Tokens of each text as the backends send it (no special tokens added: templates carry their own)."""
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _truncate(tokenizer: Any, text: str, max_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens]).strip()


def _cap_for(lengths: Sequence[int], room: int) -> int:
    """The largest per-piece cap c with sum(min(length, c)) <= room (short pieces keep their full length)."""
    low, high = 0, max(lengths, default=0)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(length, mid) for length in lengths) <= room:
            low = mid
        else:
            high = mid - 1
    return low


def _pieces(prompt: Prompt) -> list[str]:
    """The texts of a prompt's in-context examples, each field of a pair on its own, in order."""
    return [field_text for example in prompt.examples
            for field_text in (example if isinstance(example, tuple) else (example,))]


def _rebuild(spec: TaskSpec, prompt: Prompt, pieces: Sequence[str]) -> Prompt:
    """``prompt`` with its example texts replaced by ``pieces`` (the order of :func:`_pieces`)."""
    cut = list(pieces)
    examples: list[Example] = []
    for example in prompt.examples:
        if isinstance(example, tuple):
            examples.append((cut.pop(0), cut.pop(0)))
        else:
            examples.append(cut.pop(0))
    text = build_prompt(spec, examples, instruction=prompt.instruction)
    return Prompt(text, list(prompt.example_ids), prompt.label, examples, prompt.instruction)


def cap_examples(spec: TaskSpec, prompt: Prompt, tokenizer: Any, max_tokens: int) -> Prompt:
    """``prompt`` with each in-context example (each field of a pair) cut to its first ``max_tokens`` tokens.

    Prompt tokens drive a generating round's cost (generation, the update's forward and
    backward passes), and a corpus of long texts makes every prompt long. Shorter examples
    stay whole, so on a corpus of short texts the prompt is unchanged (the same object).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    pieces = _pieces(prompt)
    lengths = count_tokens(tokenizer, pieces) if pieces else []
    if all(length <= max_tokens for length in lengths):
        return prompt
    return _rebuild(spec, prompt, [_truncate(tokenizer, piece, max_tokens) if length > max_tokens else piece
                                   for piece, length in zip(pieces, lengths)])


def fit_prompt(spec: TaskSpec, prompt: Prompt, tokenizer: Any, render: Callable[[str], str],
               max_tokens: int) -> Prompt | None:
    """``prompt`` with its in-context examples cut so that ``render(text)`` has at most ``max_tokens`` tokens.

    ``render`` turns prompt text into what the model sees (chat template, response prefix).
    Every example (each field of a pair) is cut to a common token cap, the largest that fits,
    so short examples stay whole and long ones share the room left. Returns the prompt
    unchanged when it fits, and None when even empty examples do not fit (the instruction
    and template alone are too long). Cutting keeps the drawn examples (redrawing short
    ones would bias the prompts toward short texts).
    """
    if count_tokens(tokenizer, [render(prompt.text)])[0] <= max_tokens:
        return prompt
    pieces = _pieces(prompt)
    empty = _rebuild(spec, prompt, [""] * len(pieces))
    overhead = count_tokens(tokenizer, [render(empty.text)])[0]
    if overhead > max_tokens:
        return None
    lengths = count_tokens(tokenizer, pieces) if pieces else []
    room = max_tokens - overhead
    while room > 0:
        cap = _cap_for(lengths, room)
        fitted = _rebuild(spec, prompt, [_truncate(tokenizer, piece, cap) for piece in pieces])
        excess = count_tokens(tokenizer, [render(fitted.text)])[0] - max_tokens
        if excess <= 0:
            return fitted
        room -= excess  # token boundaries merged differently: shrink by what is left over
    return empty
