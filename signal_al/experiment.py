"""Methods × seeds: one active-learning run per pair, then the results table and plot.

Runs live in ``output_dir/name/<method>-seed<k>/``; a finished run is skipped and an
interrupted one resumed, so the whole grid is resumable by running the command again.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from signal_al.config import ExperimentConfig
from signal_al.evaluation.report import write_report
from signal_al.loop import STATE_FILE, ActiveLearningRun


def run_config(base: ExperimentConfig, method: str, seed: int) -> ExperimentConfig:
    """The config of one grid cell: same data and budget, this method and seed."""
    config = copy.deepcopy(base)
    config.output_dir = str(base.run_dir)
    config.name = f"{method}-seed{seed}"
    config.seed = seed
    config.active_learning.strategy = method
    if method != "signal":
        config.active_learning.stop_fraction = min(base.active_learning.stop_fraction,
                                                   base.experiment.pool_based_stop_fraction)
    return config


def run_experiment(
    base: ExperimentConfig, *, cache_root: Path | None = None, progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Every method with every seed (resuming what exists), then the report files."""
    from signal_al.strategies import get_strategy

    for method in base.experiment.methods:
        get_strategy(method)  # unknown names fail before any run starts
    for seed in range(base.experiment.seeds):
        for method in base.experiment.methods:
            config = run_config(base, method, seed)
            log(f"=== {method}, seed {seed} -> {config.run_dir}")
            resume = (config.run_dir / STATE_FILE).is_file()
            ActiveLearningRun(config, cache_root=cache_root, progress=progress, log=log).run(resume=resume)
    return write_report(base.run_dir, title=f"{base.data.task}: test accuracy vs acquired labels")
