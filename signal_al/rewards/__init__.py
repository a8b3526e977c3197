"""The SIGnAL score and the adapters that plug it into other code.

- :func:`signal_scores`: the score over arrays (probabilities + embeddings).
- :class:`RewardConfig` and :func:`score_kwargs`: the ``reward`` section and the score
  parameters it sets (the one mapping every caller uses).
- :func:`knn_mean_distances`, :func:`offdist_flags`, :func:`relevance_factors`: distances to the
  labeled set compared with real texts' (``reward.relevance``, off-distribution shares).
- :class:`LabeledIndex`: the faiss kNN index over the labeled set.
- :class:`SignalScorer`: the score over texts, using the classifier (imports torch lazily).
- :func:`get_signal_reward`: TRL reward-function adapter; :class:`RewardShaping` for RL rewards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signal_al.rewards.config import RewardConfig, score_kwargs
from signal_al.neighbors.divergence import PROB_FLOOR, neighbor_kl
from signal_al.neighbors.knn import LabeledIndex, faiss_gpu_available
from signal_al.rewards.relevance import RELEVANCE_MODES, knn_mean_distances, offdist_flags, relevance_factors
from signal_al.rewards.score import SignalScores, signal_scores
from signal_al.rewards.shaping import RewardShaping, invalid_reasons, shape_rewards, whiten
from signal_al.rewards.trl_reward import completion_text, get_signal_reward

if TYPE_CHECKING:
    from signal_al.rewards.scorer import SignalScorer

__all__ = [
    "PROB_FLOOR",
    "RELEVANCE_MODES",
    "LabeledIndex",
    "RewardConfig",
    "RewardShaping",
    "SignalScorer",
    "SignalScores",
    "completion_text",
    "faiss_gpu_available",
    "get_signal_reward",
    "invalid_reasons",
    "knn_mean_distances",
    "neighbor_kl",
    "offdist_flags",
    "relevance_factors",
    "score_kwargs",
    "shape_rewards",
    "signal_scores",
    "whiten",
]


def __getattr__(name: str):
    if name == "SignalScorer":  # pulls in torch and transformers; only when asked for
        from signal_al.rewards.scorer import SignalScorer

        return SignalScorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
