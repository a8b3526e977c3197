"""The ``reward`` config section: the SIGnAL score's parameters and how D_RL turns scores into rewards.

The section *is* the score's parameters (:class:`~signal_al.rewards.score.ScoreParams`) plus the
reward shaping of D_RL, so the ``signal`` strategy (and with it the loop's D_RL reward), the text
scorer and the generator evaluation take their parameters from it unchanged and cannot drift apart
when a score parameter is added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from signal_al.core.config_io import check, field
from signal_al.core.errors import ConfigError
from signal_al.rewards.score import ScoreParams

__all__ = ["RewardConfig"]


@dataclass(frozen=True)
class RewardConfig(ScoreParams):
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
        try:
            super().__post_init__()
        except ValueError as exc:  # the score's own check, named as a config key
            raise ConfigError(f"reward.{exc}") from None
        if self.gated_penalty is not None:
            check(math.isfinite(self.gated_penalty), "reward.gated_penalty", "must be a finite number or null")
        if self.invalid_penalty is not None:
            check(math.isfinite(self.invalid_penalty), "reward.invalid_penalty", "must be a finite number or null")

    @property
    def applied_gated_penalty(self) -> float | None:
        """The reward of a gated kept candidate as D_RL and the held-out comparison apply it: None (its 0
        stays) without a relevance gate."""
        return None if self.relevance == "none" else self.gated_penalty
