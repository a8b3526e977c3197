"""The names of the files and folders in a run folder, in one place.

The engine writes them, and every reader (the run store, the reward of a run folder, the report, the
generator evaluation, the RL bench's own output folder) finds them by these names; a test fails on
any of them spelled out anywhere else. ``state.json`` itself is read by
:func:`signal_al.core.run_state.read_state`.
"""

from __future__ import annotations

__all__ = ["ADAPTERS_DIR", "ANNOTATION_DIR", "BASELINES_DIR", "CANDIDATES_FILE", "CHECKPOINTS_DIR",
           "CHECKPOINT_GLOB", "CONFIG_FILE", "GENERATOR_EVAL_DIR", "LABELED_FILE", "LABELSTUDIO_CONFIG_FILE",
           "METRICS_FILE", "PREVIOUS_STATE_FILE", "RL_DIR", "SERVER_LOG", "STATE_FILE", "adapter_folder",
           "adapter_round", "annotation_files", "checkpoint_folder", "rl_file"]

# --- every run ---------------------------------------------------------------------------------

#: The commit point, written whole after every round.
STATE_FILE = "state.json"
#: The state before the last commit, kept for recovery by hand.
PREVIOUS_STATE_FILE = "state.prev.json"
CONFIG_FILE = "config.yaml"
#: One row per round (a view of the state).
METRICS_FILE = "metrics.jsonl"
#: The labeled set with its labels (a view of the state).
LABELED_FILE = "labeled.jsonl"
CHECKPOINTS_DIR = "checkpoints"
#: Glob for the classifier checkpoint folders inside CHECKPOINTS_DIR.
CHECKPOINT_GLOB = "classifier-round-[0-9][0-9][0-9]*"
#: ``signal-al run``'s same-seed baselines, one run folder each.
BASELINES_DIR = "baselines"


def checkpoint_folder(round_index: int) -> str:
    """The run-relative folder of a round's classifier checkpoint.

    >>> checkpoint_folder(7)
    'checkpoints/classifier-round-007'
    """
    return f"{CHECKPOINTS_DIR}/classifier-round-{round_index:03d}"


# --- the generator (SIGnAL) --------------------------------------------------------------------

#: Every candidate the generator wrote, kept and dropped.
CANDIDATES_FILE = "candidates.jsonl"
RL_DIR = "rl"
ADAPTERS_DIR = "adapters"
#: The log of a vLLM server a run (or an evaluation) started; its pid file sits beside it.
SERVER_LOG = "vllm-server.log"
#: ``signal-al evaluate-generator``'s default output folder.
GENERATOR_EVAL_DIR = "generator_eval"


def rl_file(round_index: int) -> str:
    """The run-relative D_RL file of a round.

    >>> rl_file(2)
    'rl/round-002.jsonl'
    """
    return f"{RL_DIR}/round-{round_index:03d}.jsonl"


def adapter_folder(round_index: int) -> str:
    """The run-relative folder of the adapter trained at the end of round ``round_index``.

    >>> adapter_folder(3)
    'adapters/round-003'
    """
    return f"{ADAPTERS_DIR}/round-{round_index:03d}"


def adapter_round(path: str) -> int:
    """The round an adapter folder from :func:`adapter_folder` was trained in.

    >>> adapter_round("adapters/round-003/")
    3
    """
    return int(path.rstrip("/").rsplit("-", 1)[1])


# --- human annotation --------------------------------------------------------------------------

ANNOTATION_DIR = "annotation"
#: The Label Studio labeling interface, beside the batches.
LABELSTUDIO_CONFIG_FILE = "labelstudio_config.xml"


def annotation_files(round_index: int) -> dict[str, str]:
    """The run-relative files of a round's human batch: ``csv`` (to fill), ``labelstudio`` (tasks to import)
    and ``labelstudio_export`` (Label Studio's JSON export, read in preference to the CSV).

    >>> annotation_files(1)["csv"]
    'annotation/round_001.csv'
    """
    stem = f"{ANNOTATION_DIR}/round_{round_index:03d}"
    return {"csv": f"{stem}.csv", "labelstudio": f"{stem}.labelstudio.json",
            "labelstudio_export": f"{stem}.labelstudio-export.json"}
