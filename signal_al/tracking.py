"""Optional Weights & Biases logging next to the always-written local JSONL.

wandb is only touched when ``wandb.enabled`` is set; ``wandb.mode: offline`` works without
an account. A resumed run logs into the same wandb run (its id is derived from the run dir).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from signal_al.config import ExperimentConfig
from signal_al.config_io import to_dict


def _flatten(row: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[f"{prefix}{key}"] = value
    return flat


class Tracker:
    """Logs one row per round to wandb when enabled; a no-op otherwise."""

    def __init__(self, config: ExperimentConfig, run_dir: Path) -> None:
        self._run = None
        if not config.wandb.enabled or config.wandb.mode == "disabled":
            return
        import wandb

        run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
        self._run = wandb.init(project=config.wandb.project, entity=config.wandb.entity, name=config.name,
                               id=run_id, resume="allow", dir=str(run_dir), mode=config.wandb.mode,
                               config=to_dict(config))

    def log(self, row: dict, step: int) -> None:
        if self._run is not None:
            self._run.log(_flatten(row), step=step)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
