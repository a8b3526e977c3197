"""The SIGnAL score as a TRL reward function: ``(prompts, completions, **kwargs) -> list[float]``.

Pass the result of :func:`get_signal_reward` to ``trl.GRPOTrainer(reward_funcs=...)`` (or call it
from any code that uses TRL's reward-function convention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from signal_al.rewards.shaping import RewardShaping, invalid_reasons, shape_rewards

__all__ = ["completion_text", "get_signal_reward"]


def completion_text(completion: str | Sequence[dict]) -> str:
    """The generated text of a plain-text or conversational completion.

    >>> completion_text("  a review  ")
    'a review'
    >>> completion_text([{"role": "assistant", "content": "a review"}])
    'a review'
    """
    if isinstance(completion, str):
        return completion.strip()
    try:
        return str(completion[-1]["content"] or "").strip()
    except (IndexError, KeyError, TypeError):
        raise ValueError(
            "completions: expected strings or lists of {'role', 'content'} messages, "
            f"got {type(completion).__name__}"
        ) from None


def get_signal_reward(
    scorer: Callable[[list[str]], Sequence[float]],
    shaping: RewardShaping | None = None,
    in_context_column: str = "in_context",
    labeled_texts: Sequence[str] | None = None,
) -> Callable:
    r"""
    Reward function that scores each completion with the SIGnAL score: how strongly the
    classifier's prediction on it disagrees with its nearest labeled neighbours, per unit
    of distance. Invalid completions (empty, longer than `shaping.max_chars`, a copy of one
    of the prompt's in-context examples or of a labeled text) get `shaping.invalid_penalty`
    and are not scored.

    Args:
        scorer (`Callable[[list[str]], Sequence[float]]`):
            Maps texts to scores, typically a [`~signal_al.rewards.SignalScorer`]. Its `labeled_texts`
            attribute, when present, is the labeled set used for copy detection.
        shaping (`RewardShaping`, *optional*):
            Whitening, clipping and the invalid-generation penalty. Defaults to raw scores with a
            penalty of `-1.0`.
        in_context_column (`str`, *optional*, defaults to `"in_context"`):
            Dataset column holding each prompt's in-context examples (a list of strings). GRPOTrainer
            passes dataset columns to reward functions as keyword arguments.
        labeled_texts (`Sequence[str]`, *optional*):
            Labeled set for copy detection when the scorer has no `labeled_texts`.

    Returns:
        `Callable`: a reward function `(prompts, completions, **kwargs) -> list[float]` accepting
        plain-text and conversational completions.

    Example:
    ```python
    >>> from signal_al.rewards import get_signal_reward

    >>> reward = get_signal_reward(lambda texts: [len(t) / 10 for t in texts])
    >>> reward(
    ...     prompts=["Write a review.", "Write a review."],
    ...     completions=[[{"role": "assistant", "content": "great fun"}], [{"role": "assistant", "content": ""}]],
    ... )
    [0.9, -1.0]

    ```
    """
    return _SignalReward(scorer, shaping or RewardShaping(), in_context_column, labeled_texts)


class _SignalReward:
    # A callable class rather than a closure so the reward stays picklable (TRL's async rollout
    # workers pickle reward functions); `__name__` is the metric name TRL logs it under.
    __name__ = "signal_reward"

    def __init__(self, scorer, shaping: RewardShaping, in_context_column: str, labeled_texts):
        self.scorer = scorer
        self.shaping = shaping
        self.in_context_column = in_context_column
        self.labeled_texts = labeled_texts

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        if prompts is not None and len(prompts) != len(texts):
            raise ValueError(f"completions: got {len(texts)} completions for {len(prompts)} prompts")
        if self.shaping.penalize_copies:
            in_context = kwargs.get(self.in_context_column)
            labeled = self.labeled_texts if self.labeled_texts is not None else getattr(self.scorer, "labeled_texts", ())
        else:
            in_context, labeled = None, ()
        reasons = invalid_reasons(texts, max_chars=self.shaping.max_chars, in_context=in_context, labeled=labeled)
        invalid = np.array([r is not None for r in reasons], dtype=bool)
        scores = np.zeros(len(texts), dtype=np.float64)
        valid = np.flatnonzero(~invalid)
        if valid.size:
            scores[valid] = np.asarray(self.scorer([texts[i] for i in valid]), dtype=np.float64)
        rewards = shape_rewards(scores, invalid, self.shaping)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):  # GRPOTrainer passes this; averaged per logging step
            log_metric("signal/invalid_fraction", float(invalid.mean()) if invalid.size else 0.0)
            if valid.size:
                log_metric("signal/raw_score_mean", float(scores[valid].mean()))
        return rewards.tolist()
