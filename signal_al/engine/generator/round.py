"""The SIGnAL-only pieces of a round, as plain functions the loop calls in order.

Candidates become synthetic pool items; the round's SIGnAL scores (from the loop's one
classifier pass) become D_RL rewards; per-round generator statistics go into the metrics
row. Nothing here knows the order of a round's steps (:mod:`signal_al.engine.loop` does) or does I/O
beyond what its name says.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

from signal_al.classifier.metrics import distinct_n
from signal_al.core.run_state import Item
from signal_al.generation.records import Candidate
from signal_al.rewards.shaping import RewardShaping, shape_rewards
from signal_al.trainers.rollouts import Rollout

def synthetic_id(round_index: int, position: int) -> str:
    """Pool id of the kept candidate generated for prompt ``position`` of round ``round_index``."""
    return f"syn:r{round_index}:{position}"


def synthetic_items(candidates: Sequence[Candidate], round_index: int) -> list[Item]:
    """The kept candidates as unlabeled pool items with provenance (round, prompt)."""
    return [Item(id=synthetic_id(round_index, i), text=c.text or "", text_pair=c.text_pair, source="synthetic",
                 round=round_index, prompt=c.prompt)
            for i, c in enumerate(candidates) if c.kept]


def generation_stats(candidates: Sequence[Candidate]) -> dict:
    """Drop fractions (overall and by reason) and diversity of the kept candidates."""
    total = max(len(candidates), 1)
    reasons = Counter(c.drop_reason or "unknown" for c in candidates if not c.kept)
    kept = [c.text or "" for c in candidates if c.kept]
    return {
        "n_candidates": len(candidates),
        "n_kept": len(kept),
        "dropped_fraction": round(sum(reasons.values()) / total, 6),
        "dropped_by_reason": {reason: round(count / total, 6) for reason, count in sorted(reasons.items())},
        "distinct_1": distinct_n(kept, 1),
        "distinct_2": distinct_n(kept, 2),
    }


def rl_dataset(candidates: Sequence[Candidate], scores: dict[str, float], round_index: int,
               invalid_penalty: float | None, whiten_kept: bool = False,
               gated_penalty: float | None = None) -> list[Rollout]:
    """D_RL: every candidate with its SIGnAL score as reward (standardised over the kept
    candidates with ``whiten_kept``).

    ``scores`` maps a synthetic item id to its score from the round's classifier pass.
    Dropped candidates get ``invalid_penalty`` (so chatter and copies are not free), or
    are left out when it is None; those without completion tokens are always left out.
    Kept candidates scored exactly 0 (the relevance gate's off-distribution text) get
    ``gated_penalty`` when it is set. Each rollout carries the served log-probs of its tokens
    (when the generator returned them), so the update can check served = trained.
    """
    rows = [(i, c) for i, c in enumerate(candidates)
            if c.completion_token_ids and c.prompt_token_ids and (c.kept or invalid_penalty is not None)]
    raw = np.array([scores[synthetic_id(round_index, i)] if c.kept else 0.0 for i, c in rows], dtype=np.float64)
    invalid = np.array([not c.kept for _, c in rows], dtype=bool)
    shaping = RewardShaping(whiten=whiten_kept, invalid_penalty=0.0 if invalid_penalty is None else invalid_penalty,
                            gated_penalty=gated_penalty)
    rewards = shape_rewards(raw, invalid, shaping) if rows else raw
    return [Rollout(prompt_token_ids=list(c.prompt_token_ids), completion_token_ids=list(c.completion_token_ids),
                    reward=float(r), prompt=c.prompt_text, completion=c.raw_output,
                    group=None if c.group is None else f"r{round_index}:g{c.group}",
                    metadata={"id": synthetic_id(round_index, i), "kept": c.kept, "drop_reason": c.drop_reason},
                    logprobs=served_logprobs(c))
            for (i, c), r in zip(rows, rewards)]


def served_logprobs(candidate: Candidate) -> list[float] | None:
    """The log-probs the generator sampled the candidate's tokens with, when it returned one per token."""
    values = candidate.logprobs
    if values is None or len(values) != len(candidate.completion_token_ids):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def shuffled_scores(scores: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    """The same score values assigned to the same candidates in a random order (the ablation's null reward)."""
    keys = sorted(scores)
    values = np.array([scores[k] for k in keys])
    return dict(zip(keys, rng.permutation(values).tolist()))


def reward_stats(candidates: Sequence[Candidate], scores: dict[str, float], round_index: int) -> dict:
    """Mean/std/max of the SIGnAL scores of the round's kept candidates (NaN-free: empty gives None)."""
    values = np.array([scores[synthetic_id(round_index, i)] for i, c in enumerate(candidates) if c.kept])
    if values.size == 0:
        return {"reward_mean": None, "reward_std": None, "reward_max": None}
    return {"reward_mean": float(values.mean()), "reward_std": float(values.std()), "reward_max": float(values.max())}


__all__ = ["generation_stats", "reward_stats", "rl_dataset", "served_logprobs", "shuffled_scores", "synthetic_id",
           "synthetic_items"]
