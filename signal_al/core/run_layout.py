"""The names of the files and folders in a run folder, in one place: the run store writes them,
and readers that must stay light (the reward module, the report) find them by the same names."""

from __future__ import annotations

__all__ = ["CHECKPOINTS_DIR", "CONFIG_FILE", "LABELED_FILE", "METRICS_FILE", "PREVIOUS_STATE_FILE", "STATE_FILE",
           "checkpoint_folder"]

STATE_FILE = "state.json"
PREVIOUS_STATE_FILE = "state.prev.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
LABELED_FILE = "labeled.jsonl"
CHECKPOINTS_DIR = "checkpoints"
#: Glob for the classifier checkpoint folders inside CHECKPOINTS_DIR.
CHECKPOINT_GLOB = "classifier-round-[0-9][0-9][0-9]*"


def checkpoint_folder(round_index: int) -> str:
    """The run-relative folder of a round's classifier checkpoint.

    >>> checkpoint_folder(7)
    'checkpoints/classifier-round-007'
    """
    return f"{CHECKPOINTS_DIR}/classifier-round-{round_index:03d}"
