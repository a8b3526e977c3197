"""The ``reward`` config section: parameters of the SIGnAL KL-over-distance score and D_RL rewards.

:func:`score_kwargs` is the one place that turns the section into :func:`signal_scores` keyword
arguments, so the ``signal`` strategy (and with it the loop's D_RL reward), the text scorer and
the generator evaluation cannot drift apart when a score parameter is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from signal_al.core.config_io import check, field
from signal_al.rewards.relevance import RELEVANCE_MODES, Relevance


@dataclass
class RewardConfig:
    k: int = field(10, help="Labeled nearest neighbours per scored item.")
    kl_direction: Literal["forward", "reverse"] = field(
        "forward", help="forward: KL(p_x || p_neighbour) (SIGnAL paper); reverse: KL(p_neighbour || p_x) (CAL code)."
    )
    eps: float = field(1e-6, help="Distance floor; keeps the score finite for duplicates.")
    normalize: bool = field(True, help="L2-normalise embeddings before the Euclidean distance.")
    approximate: bool = field(
        False, help="Approximate kNN (about sqrt(L) k-means lists, a few % of them probed) instead of exact; "
        "for labeled sets of tens of thousands and more."
    )
    relevance: Relevance = field(
        "none", help="Gate the score by how real text lies (beyond the paper): none (paper's formula); quantile "
        "(score 0 when the item's mean k-NN distance to the labeled set exceeds the relevance_quantile of the real "
        "unlabeled pool's); typical (also 0 below their 1 - relevance_quantile quantile: catches meta-commentary, "
        "which embeds closer to the labeled set than real text). See results/offdist/.")
    relevance_quantile: float = field(
        0.95, help="relevance: quantile of the real pool's mean k-NN distances past which an item counts as "
        "off-distribution (in [0.5, 1]).")
    whiten_kept: bool = field(
        False, help="Standardise the kept candidates' scores within each round for D_RL, so reward.invalid_penalty "
        "is in standard deviations (e.g. -2): keeps the ranking among kept candidates and still penalises dropped "
        "ones (ppo.whiten_rewards over all rewards lets a -1 penalty swamp scores of ~1e-3).")
    gated_penalty: float | None = field(
        None, help="D_RL reward of a kept candidate the relevance gate scored 0 (off-distribution); null keeps its 0. "
        "Negative values teach the generator to avoid off-distribution text instead of being indifferent to it "
        "(scripts/bench_rl.py --gated-penalty). Ignored with relevance: none.")
    invalid_penalty: float | None = field(
        -1.0, help="D_RL reward of a candidate dropped by cleaning (empty, chatter, duplicate); null leaves dropped "
        "candidates out of D_RL. Kept candidates get their raw SIGnAL score (whitening/clipping: ppo.*)."
    )

    def __post_init__(self) -> None:
        check(self.k > 0, "reward.k", f"must be positive, got {self.k}")
        check(self.eps > 0, "reward.eps", f"must be positive, got {self.eps}")
        check(self.relevance in RELEVANCE_MODES, "reward.relevance",
              f"must be one of {', '.join(map(repr, RELEVANCE_MODES))}, got {self.relevance!r}")
        check(0.5 <= self.relevance_quantile <= 1.0, "reward.relevance_quantile",
              f"must be in [0.5, 1], got {self.relevance_quantile}")
        if self.gated_penalty is not None:
            check(math.isfinite(self.gated_penalty), "reward.gated_penalty", "must be a finite number or null")
        if self.invalid_penalty is not None:
            check(math.isfinite(self.invalid_penalty), "reward.invalid_penalty", "must be a finite number or null")


def score_kwargs(config: RewardConfig) -> dict[str, Any]:
    """The :func:`~signal_al.rewards.signal_scores` keyword arguments the ``reward`` section sets.

    >>> score_kwargs(RewardConfig(k=5))
    {'k': 5, 'kl_direction': 'forward', 'eps': 1e-06, 'normalize': True, 'approximate': False, \
'relevance': 'none', 'relevance_quantile': 0.95}
    """
    return {"k": config.k, "kl_direction": config.kl_direction, "eps": config.eps, "normalize": config.normalize,
            "approximate": config.approximate, "relevance": config.relevance,
            "relevance_quantile": config.relevance_quantile}
