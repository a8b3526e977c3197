"""Turning raw SIGnAL scores into RL rewards: invalid generations, whitening, clipping.

The raw score is unbounded (KL over a distance floored at ``eps``) and a generator quickly
learns to game any gap in it: an empty string, a runaway generation or a copy of an
in-context example must not be rewarded. Invalid generations get a fixed penalty; the
valid ones are optionally whitened (zero mean, unit variance over the valid items of the
batch) and then clipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RewardShaping", "normalize_text", "invalid_reasons", "whiten", "shape_rewards"]


@dataclass(frozen=True)
class RewardShaping:
    """How raw scores become rewards. The defaults leave valid scores untouched."""

    whiten: bool = False
    """Standardise the valid rewards of each batch (after this, ``clip`` is in standard deviations)."""
    clip: float | None = None
    """Clip valid rewards to [-clip, clip] (after whitening); ``None`` keeps them as they are."""
    invalid_penalty: float = -1.0
    """Reward of an invalid generation: empty, longer than ``max_chars``, or a copy."""
    max_chars: int | None = None
    """Longest valid generation in characters (after stripping); ``None`` for no limit."""
    penalize_copies: bool = True
    """Treat a copy of an in-context example or of a labeled text as invalid."""
    gated_penalty: float | None = None
    """Reward of a valid generation whose score is exactly 0, i.e. one the relevance gate
    (``reward.relevance``) marked off-distribution; ``None`` keeps its 0. Gated rows are left
    out of the whitening statistics, like invalid ones."""

    def __post_init__(self) -> None:
        if self.clip is not None and not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip: must be a positive number or None, got {self.clip!r}")
        if not np.isfinite(self.invalid_penalty):
            raise ValueError(f"invalid_penalty: must be finite, got {self.invalid_penalty!r}")
        if self.gated_penalty is not None and not np.isfinite(self.gated_penalty):
            raise ValueError(f"gated_penalty: must be finite or None, got {self.gated_penalty!r}")
        if self.max_chars is not None and self.max_chars < 1:
            raise ValueError(f"max_chars: must be positive or None, got {self.max_chars!r}")


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form used to detect copies."""
    return " ".join(text.casefold().split())


def invalid_reasons(
    texts: Sequence[str],
    *,
    max_chars: int | None = None,
    in_context: Sequence[Sequence[str] | None] | None = None,
    labeled: Iterable[str] = (),
) -> list[str | None]:
    """Why each text is an invalid generation (``"empty"``, ``"too_long"``, ``"copy_in_context"``,
    ``"copy_labeled"``), or ``None`` when it is valid.

    ``in_context[i]`` are the examples shown in the prompt of text ``i``; ``labeled`` is
    the labeled set. Copies are detected after :func:`normalize_text`.
    """
    if in_context is not None and len(in_context) != len(texts):
        raise ValueError(f"in_context: has {len(in_context)} rows but there are {len(texts)} texts")
    labeled_set = {normalize_text(t) for t in labeled}
    reasons: list[str | None] = []
    for i, text in enumerate(texts):
        norm = normalize_text(text)
        if not norm:
            reasons.append("empty")
        elif max_chars is not None and len(text.strip()) > max_chars:
            reasons.append("too_long")
        elif in_context is not None and in_context[i] and norm in {normalize_text(t) for t in in_context[i]}:
            reasons.append("copy_in_context")
        elif norm in labeled_set:
            reasons.append("copy_labeled")
        else:
            reasons.append(None)
    return reasons


def whiten(values: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` in float64; all zeros when there is no spread (or fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return np.zeros_like(x)
    std = x.std()
    centred = x - x.mean()
    return centred / std if std > 1e-12 else np.zeros_like(x)


def shape_rewards(scores: np.ndarray, invalid: np.ndarray, shaping: RewardShaping) -> np.ndarray:
    """Rewards from raw ``scores``: valid ones whitened/clipped per ``shaping``, invalid ones penalised
    (and, with ``shaping.gated_penalty``, valid ones the relevance gate scored 0).

    >>> shape_rewards(np.array([1.0, 3.0, 0.0]), np.array([False, False, True]),
    ...               RewardShaping(whiten=True, invalid_penalty=-2.0)).tolist()
    [-1.0, 1.0, -2.0]
    >>> shape_rewards(np.array([0.5, 0.0, 0.0]), np.array([False, False, True]),
    ...               RewardShaping(invalid_penalty=-1.0, gated_penalty=-0.25)).tolist()
    [0.5, -0.25, -1.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    invalid = np.asarray(invalid, dtype=bool)
    if scores.shape != invalid.shape or scores.ndim != 1:
        raise ValueError(f"invalid: shape {invalid.shape} does not match scores {scores.shape}")
    valid = ~invalid
    if not np.isfinite(scores[valid]).all():
        raise ValueError("scores: contains NaN or inf for a valid generation")
    rewards = np.full(scores.shape, float(shaping.invalid_penalty))
    if shaping.gated_penalty is not None:
        gated = valid & (scores == 0.0)
        rewards[gated] = float(shaping.gated_penalty)
        valid = valid & ~gated
    values = scores[valid]
    if shaping.whiten:
        values = whiten(values)
    if shaping.clip is not None:
        values = np.clip(values, -shaping.clip, shaping.clip)
    rewards[valid] = values
    return rewards
