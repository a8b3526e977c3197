"""A run's reward settings for RL stacks; the scorer itself comes from
:meth:`SignalScorer.from_run <signal_al.rewards.SignalScorer.from_run>`
(:mod:`signal_al.rewards.run_reward` reads the folder) and the run's config from
:meth:`RunStore.saved_config <signal_al.engine.store.RunStore.saved_config>`."""

from __future__ import annotations

from pathlib import Path

from signal_al.rewards.shaping import RewardShaping

__all__ = ["run_shaping"]


def run_shaping(run_dir: str | Path) -> RewardShaping:
    """The :class:`RewardShaping` of a run for RL stacks: its ``reward.invalid_penalty`` (0 when null)."""
    from signal_al.engine.store import RunStore

    penalty = RunStore(Path(run_dir)).saved_config().reward.invalid_penalty
    return RewardShaping(invalid_penalty=0.0 if penalty is None else float(penalty))
