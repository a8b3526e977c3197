"""A run folder's reward: the round's classifier, its labeled set and the run's ``reward`` section.

:func:`load_run_scorer` is what :meth:`SignalScorer.from_run <signal_al.rewards.SignalScorer.from_run>`,
``signal-al score``, ``signal-al serve-reward`` and the verl hook call. Round r's classifier is the
checkpoint the loop saved after training on the labels of rounds 0..r, so the scorer scores against
exactly those labels, as round r + 1's selection does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal_al.errors import UserError

__all__ = ["RunReward", "load_run_scorer", "run_shaping"]


@dataclass
class RunReward:
    """What :func:`load_run_scorer` read from the run folder, beside the scorer."""

    run_dir: Path
    round: int
    checkpoint: Path
    label_names: tuple[str, ...]
    n_labeled: int
    pair_task: bool
    config: Any
    """The run's :class:`~signal_al.config.ExperimentConfig`."""


def run_shaping(config: Any):
    """The :class:`RewardShaping` of a run for RL stacks: its ``reward.invalid_penalty`` (0 when null)."""
    from signal_al.rewards.shaping import RewardShaping

    penalty = config.reward.invalid_penalty
    return RewardShaping(invalid_penalty=0.0 if penalty is None else float(penalty))


def _checkpoint(run_dir: Path, state: Any, round_index: int) -> Path:
    name = f"classifier-round-{round_index:03d}"
    folder = run_dir / "checkpoints" / name
    if state.checkpoint and Path(state.checkpoint).name == name:
        folder = run_dir / state.checkpoint
    if not (folder / "config.json").is_file():
        kept = sorted(p.name for p in (run_dir / "checkpoints").glob("classifier-round-*")) if (
            run_dir / "checkpoints").is_dir() else []
        raise UserError(f"{run_dir}: round {round_index}'s classifier checkpoint {folder} is missing "
                        f"(kept: {', '.join(kept) or 'none'}; a run keeps only its latest classifier)")
    return folder


def load_run_scorer(run_dir: str | Path, round: int | None = None, *, device: Any = None,
                    batch_size: int | None = None, cache_root: Path | None = None):
    """``(SignalScorer, RunReward)`` for round ``round`` of the run in ``run_dir`` (default: the latest).

    Raises:
        UserError: not a run folder, no finished round yet, an unknown round or a missing checkpoint.
    """
    from transformers import AutoModelForSequenceClassification

    from signal_al.rewards.scorer import SignalScorer
    from signal_al.run_context import RunContext
    from signal_al.run_store import RunStore, saved_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    config = saved_config(run_dir)
    state = RunStore(run_dir).load_state()
    if state is None or state.round < 0:
        raise UserError(f"{run_dir}: no round has finished yet, so there is no classifier to score with")
    if round is None:
        round = state.round
    if isinstance(round, bool) or not isinstance(round, int) or not 0 <= round <= state.round:
        raise UserError(f"round: the run has rounds 0 to {state.round}, got {round!r}")
    checkpoint = _checkpoint(run_dir, state, round)
    items = {item.id: item for item in state.items}
    labeled = [items[a.id] for a in state.annotations if a.round <= round]
    labeled_ids = {item.id for item in labeled}
    pair_task = any(item.text_pair is not None for item in state.items)
    pairs = (lambda rows: [item.text_pair or "" for item in rows] if pair_task else None)
    reference = None
    if config.reward.relevance != "none":
        # the relevance reference is the real unlabeled pool, as in the loop's selection pass
        reference = [item for item in state.items if item.source == "real" and item.id not in labeled_ids]
        reference = reference or [item for item in labeled if item.source == "real"]
    context = RunContext(config, cache_root=cache_root, progress=False, log=lambda _: None)
    device = context.device if device is None else device
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).to(device).eval()
    scorer = SignalScorer(
        model, context.tokenizer, [item.text for item in labeled], pairs(labeled), config=config.reward,
        reference_texts=None if reference is None else [item.text for item in reference],
        reference_pairs=None if reference is None else pairs(reference),
        batch_size=batch_size or config.classifier.eval_batch_size, max_length=config.classifier.max_length,
        device=device)
    id2label = {int(k): v for k, v in (getattr(model.config, "id2label", None) or {}).items()}
    label_names = tuple(str(id2label.get(i, i)) for i in range(int(model.config.num_labels)))
    info = RunReward(run_dir=run_dir, round=round, checkpoint=checkpoint, label_names=tuple(label_names),
                     n_labeled=len(labeled), pair_task=pair_task, config=config)
    return scorer, info
