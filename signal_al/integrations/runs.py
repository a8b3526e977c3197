"""A run's reward settings for RL stacks; the scorer itself comes from
:meth:`SignalScorer.from_run <signal_al.rewards.SignalScorer.from_run>`
(:mod:`signal_al.rewards.run_reward` reads the folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_config", "run_shaping"]


def run_config(run_dir: str | Path) -> Any:
    """The run's saved :class:`~signal_al.config.ExperimentConfig` (e.g. for its data columns)."""
    from signal_al.engine.store import saved_config

    return saved_config(Path(run_dir))


def run_shaping(config: Any):
    """The :class:`RewardShaping` of a run for RL stacks: its ``reward.invalid_penalty`` (0 when null)."""
    from signal_al.rewards.shaping import RewardShaping

    penalty = config.reward.invalid_penalty
    return RewardShaping(invalid_penalty=0.0 if penalty is None else float(penalty))
