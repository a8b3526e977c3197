"""Token batches of rollouts: EOS truncation, group-keeping order, per-process chunks, collation.

Two layouts feed :class:`~signal_al.trainers.policy_model.PolicyWithValue`: ``full``
(prompt + completion per row) and ``shared`` (each distinct prompt once, its cache reused by
every rollout with that prompt). Both are right-padded; pads never reach a loss.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import torch


def truncate_after_eos(tokens: Sequence[int], eos_ids: set[int]) -> list[int]:
    """Keep tokens up to and including the first EOS."""
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return list(tokens[: i + 1])
    return list(tokens)


def group_shuffled_order(keys: Sequence[Hashable], generator: torch.Generator) -> list[int]:
    """Positions ``0..len(keys)-1`` with groups (equal keys) in random order, members kept adjacent.

    Adjacent members land in the same micro-batch, where they share their prompt's forward.
    With all keys distinct this is exactly ``torch.randperm(len(keys), generator=generator)``.
    """
    members: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        members.setdefault(key, []).append(position)
    groups = list(members.values())
    return [i for g in torch.randperm(len(groups), generator=generator).tolist() for i in groups[g]]


def local_chunks(indices: Sequence[int], size: int, rank: int, world: int,
                 steps: int | None = None) -> list[tuple[list[int], bool]]:
    """This process's micro-batches of ``indices``: consecutive chunks of ``size``, dealt round-robin.

    Consecutive chunks keep groups together. A process with fewer chunks than ``steps`` gets
    dummy micro-batches (flag False) so every process runs the same number of forward passes.
    """
    chunks = [list(indices[i:i + size]) for i in range(0, len(indices), size)]
    if steps is None:
        steps = max(1, -(-len(chunks) // world))
    assert len(chunks) <= steps * world, "a minibatch is larger than its micro-steps can hold"
    local = chunks[rank::world]
    return [(local[s], True) if s < len(local) else ([indices[0]], False) for s in range(steps)]


def collate_full(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                 pad_id: int) -> dict[str, torch.Tensor]:
    """Rows of prompt + completion; ``gather_index`` picks the positions predicting completion tokens."""
    n = len(prompts)
    seq_len = max(len(p) + len(c) for p, c in zip(prompts, completions))
    comp_len = max(len(c) for c in completions)
    input_ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    completion_ids = torch.full((n, comp_len), pad_id, dtype=torch.long)
    gather_index = torch.zeros((n, comp_len), dtype=torch.long)
    mask = torch.zeros((n, comp_len), dtype=torch.bool)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        input_ids[row, : len(p) + len(c)] = torch.tensor(list(p) + list(c))
        completion_ids[row, : len(c)] = torch.tensor(list(c))
        gather_index[row] = torch.arange(comp_len).clamp_max(len(c) - 1) + len(p) - 1
        mask[row, : len(c)] = True
    return {"input_ids": input_ids, "gather_index": gather_index, "completion_ids": completion_ids, "mask": mask}


def collate_shared(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                   pad_id: int) -> dict[str, torch.Tensor]:
    """Distinct prompts minus their last token as ``prefix_ids``; per rollout ``[last prompt token] + completion[:-1]``.

    The hidden state at completion position t then predicts completion token t (no gather).
    ``attention_mask`` covers prefix + completion and hides each row's prefix padding;
    ``position_ids`` continue each row's own prompt. No ``prefix_ids`` when all prompts are one token.
    """
    n = len(prompts)
    unique: dict[tuple[int, ...], int] = {}
    prefix_index = torch.tensor([unique.setdefault(tuple(p), len(unique)) for p in prompts], dtype=torch.long)
    prefixes = [key[:-1] for key in unique]
    width = max(len(x) for x in prefixes)
    comp_len = max(len(c) for c in completions)
    input_ids = torch.full((n, comp_len), pad_id, dtype=torch.long)
    completion_ids = torch.full((n, comp_len), pad_id, dtype=torch.long)
    mask = torch.zeros((n, comp_len), dtype=torch.bool)
    position_ids = torch.zeros((n, comp_len), dtype=torch.long)
    attention_mask = torch.ones((n, width + comp_len), dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        input_ids[row, : len(c)] = torch.tensor([p[-1], *c[:-1]])
        completion_ids[row, : len(c)] = torch.tensor(list(c))
        mask[row, : len(c)] = True
        position_ids[row] = torch.arange(comp_len) + len(p) - 1
        attention_mask[row, len(p) - 1:width] = 0
    batch = {"input_ids": input_ids, "completion_ids": completion_ids, "position_ids": position_ids, "mask": mask}
    if width > 0:
        prefix_ids = torch.full((len(prefixes), width), pad_id, dtype=torch.long)
        for g, prefix in enumerate(prefixes):
            prefix_ids[g, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
        batch.update(prefix_ids=prefix_ids, prefix_index=prefix_index, attention_mask=attention_mask)
    return batch


__all__ = ["collate_full", "collate_shared", "group_shuffled_order", "local_chunks", "truncate_after_eos"]
