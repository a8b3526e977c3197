"""The SIGnAL score and the adapters that plug it into other code.

- :func:`signal_scores`: the score over arrays (probabilities + embeddings), with its parameters
  :class:`ScoreParams` (the ``reward`` section, :class:`RewardConfig`, is one).
- :func:`knn_mean_distances`, :func:`offdist_flags`, :func:`relevance_factors`,
  :func:`relevance_reference`: distances to the labeled set compared with real texts'
  (``reward.relevance``, off-distribution shares).
- :class:`SignalScorer`: the score over texts, using the classifier (imports torch lazily); also of
  a run folder (``SignalScorer.from_run``).
- :func:`get_signal_reward`: TRL reward-function adapter; :class:`RewardShaping` for RL rewards.

The kNN index and the divergences the score shares with the strategies are in
:mod:`signal_al.neighbors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signal_al.rewards.config import RewardConfig
from signal_al.rewards.relevance import (RELEVANCE_MODES, knn_mean_distances, offdist_flags, relevance_factors,
                                         relevance_reference)
from signal_al.rewards.score import ScoreParams, SignalScores, score_params, signal_scores
from signal_al.rewards.shaping import RewardShaping, invalid_reasons, shape_rewards, whiten
from signal_al.rewards.trl_reward import completion_text, get_signal_reward

if TYPE_CHECKING:
    from signal_al.rewards.scorer import SignalScorer

__all__ = [
    "RELEVANCE_MODES",
    "RewardConfig",
    "RewardShaping",
    "ScoreParams",
    "SignalScorer",
    "SignalScores",
    "completion_text",
    "get_signal_reward",
    "invalid_reasons",
    "knn_mean_distances",
    "offdist_flags",
    "relevance_factors",
    "relevance_reference",
    "score_params",
    "shape_rewards",
    "signal_scores",
    "whiten",
]


def __getattr__(name: str):
    if name == "SignalScorer":  # pulls in torch and transformers; only when asked for
        from signal_al.rewards.scorer import SignalScorer

        return SignalScorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
