"""A run folder's reward, read with nothing above this package: round r's classifier checkpoint,
the run's state (:func:`~signal_al.core.run_state.read_state`, the one reader of ``state.json``) and
its ``reward`` and ``classifier`` sections.

Round r's classifier is the checkpoint the loop saved after training on the labels of rounds
0..r, so a scorer built from these pieces scores against exactly those labels, as round
r + 1's selection does. :meth:`SignalScorer.from_run <signal_al.rewards.SignalScorer.from_run>`
builds the scorer; ``signal-al score``, ``signal-al serve-reward`` and the verl hook call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal_al.classifier.config import ClassifierConfig
from signal_al.core.config_io import load_config, read_yaml
from signal_al.core.errors import ConfigError, UserError
from signal_al.core.run_layout import CHECKPOINT_GLOB, CHECKPOINTS_DIR, CONFIG_FILE, checkpoint_folder
from signal_al.core.run_state import RunState, read_state
from signal_al.rewards.config import RewardConfig

__all__ = ["RunReward", "RunRewardParts", "read_run_reward"]


@dataclass
class RunReward:
    """What was read from the run folder (``scorer.run`` of a scorer from a run)."""

    run_dir: Path
    round: int
    checkpoint: Path
    label_names: tuple[str, ...]
    n_labeled: int
    pair_task: bool


@dataclass
class RunRewardParts:
    """Everything a :class:`~signal_al.rewards.SignalScorer` of a run is built from."""

    model: Any
    tokenizer: Any
    state: RunState
    reward: RewardConfig
    batch_size: int
    max_length: int
    device: Any
    info: RunReward


def _checkpoint(run_dir: Path, saved: str | None, round_index: int) -> Path:
    folder = run_dir / checkpoint_folder(round_index)
    name = folder.name
    if saved and Path(saved).name == name:
        folder = run_dir / saved
    if not (folder / "config.json").is_file():
        kept = sorted(p.name for p in (run_dir / CHECKPOINTS_DIR).glob(CHECKPOINT_GLOB)) if (
            run_dir / CHECKPOINTS_DIR).is_dir() else []
        raise UserError(f"{run_dir}: round {round_index}'s classifier checkpoint {folder} is missing "
                        f"(kept: {', '.join(kept) or 'none'}; a run keeps only its latest classifier)")
    return folder


def read_run_reward(run_dir: str | Path, round: int | None = None, *, device: Any = None,
                    batch_size: int | None = None, cache_root: Path | None = None,
                    device_setting: str = "device") -> RunRewardParts:
    """The pieces of round ``round``'s scorer of the run in ``run_dir`` (default: the latest round).

    Raises:
        UserError: not a run folder, no finished round yet, an unknown round, a missing checkpoint, or
            a device (``device``, named ``device_setting``, else the run's) this machine does not have.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from signal_al.assets.registry import resolve_model
    from signal_al.core.model_files import model_folder_problem
    from signal_al.core.runtime import resolve_device

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    try:
        reward = load_config(RewardConfig, config_file, section="reward")
        classifier = load_config(ClassifierConfig, config_file, section="classifier")
        run_device = read_yaml(config_file).get("device") or "auto"
    except ConfigError as exc:
        raise UserError(f"{run_dir}: not a readable run ({exc})") from None
    state = read_state(run_dir)
    if state is None or state.round < 0:
        raise UserError(f"{run_dir}: no round has finished yet, so there is no classifier to score with")
    finished = state.round
    if round is None:
        round = finished
    if isinstance(round, bool) or not isinstance(round, int) or not 0 <= round <= finished:
        raise UserError(f"round: the run has rounds 0 to {finished}, got {round!r}")
    checkpoint = _checkpoint(run_dir, state.checkpoint, round)
    if device is None:
        device = resolve_device(str(run_device), setting=f"device in {config_file}")
    elif isinstance(device, str):
        device = resolve_device(device, setting=device_setting)
    problem = model_folder_problem(checkpoint)
    if problem is not None:
        raise UserError(f"{run_dir}: round {round}'s classifier checkpoint is damaged ({problem})")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(classifier.model, cache_root))
    id2label = {int(k): v for k, v in (getattr(model.config, "id2label", None) or {}).items()}
    label_names = tuple(str(id2label.get(i, i)) for i in range(int(model.config.num_labels)))
    info = RunReward(run_dir=run_dir, round=round, checkpoint=checkpoint, label_names=label_names,
                     n_labeled=len(state.labeled_items(up_to_round=round)),
                     pair_task=any(item.text_pair is not None for item in state.items))
    return RunRewardParts(model=model, tokenizer=tokenizer, state=state, reward=reward,
                          batch_size=batch_size or classifier.eval_batch_size, max_length=classifier.max_length,
                          device=device, info=info)
