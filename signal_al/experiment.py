"""Methods × seeds: one active-learning run per pair, then the results table and plot.

Runs live in ``output_dir/name/<method>-seed<k>/``; a finished run is skipped and an
interrupted one resumed, so the whole grid is resumable by running the command again.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from signal_al.config import ExperimentConfig
from signal_al.evaluation.report import write_report
from signal_al.loop import STATE_FILE, ActiveLearningRun


#: Grid method names of SIGnAL and its ablations -> active_learning.generator_update.
SIGNAL_VARIANTS = {"signal": "ppo", "signal-frozen": "frozen", "signal-shuffled": "shuffled"}


def strategy_of(method: str) -> str:
    """The selection strategy behind a grid method name (the ablations select like SIGnAL)."""
    return "signal" if method in SIGNAL_VARIANTS else method


def run_config(base: ExperimentConfig, method: str, seed: int) -> ExperimentConfig:
    """The config of one grid cell: same data and budget, this method and seed."""
    config = copy.deepcopy(base)
    config.output_dir = str(base.run_dir)
    config.name = f"{method}-seed{seed}"
    config.seed = seed
    config.active_learning.strategy = strategy_of(method)
    if method in SIGNAL_VARIANTS:
        config.active_learning.generator_update = SIGNAL_VARIANTS[method]
    config.active_learning.baselines = []  # the grid itself holds every method
    if method not in SIGNAL_VARIANTS:
        config.active_learning.stop_fraction = min(base.active_learning.stop_fraction,
                                                   base.experiment.pool_based_stop_fraction)
    return config


BASELINES_DIR = "baselines"


def baseline_config(main: ExperimentConfig, method: str) -> ExperimentConfig:
    """The same-seed comparison run of ``method`` that lives inside the main run's folder."""
    config = run_config(main, method, main.seed)
    config.output_dir, config.name = str(main.run_dir / BASELINES_DIR), method
    return config


def run_with_baselines(config: ExperimentConfig, *, resume: bool = False, cache_root: Path | None = None,
                       progress: bool = True, log: Callable[[str], None] = print):
    """``signal-al run``: the configured run, then its same-seed baselines and the comparison report.

    Returns the main run's final state and the report paths (None without baselines).
    """
    from signal_al.strategies import get_strategy

    for method in config.active_learning.baselines:
        get_strategy(strategy_of(method))
    state = ActiveLearningRun(config, cache_root=cache_root, progress=progress, log=log).run(resume=resume)
    if not config.active_learning.baselines:
        return state, None
    for method in config.active_learning.baselines:
        baseline = baseline_config(config, method)
        log(f"=== baseline {method}, seed {config.seed} -> {baseline.run_dir}")
        resumable = (baseline.run_dir / STATE_FILE).is_file()
        ActiveLearningRun(baseline, cache_root=cache_root, progress=progress, log=log).run(resume=resumable)
    title = f"{config.data.task}, seed {config.seed}: {config.active_learning.strategy} vs baselines"
    return state, write_report(config.run_dir, title=title)


def uses_generator(method: str) -> bool:
    """SIGnAL and its ablations talk to the one generator server, so they never run in parallel."""
    return method.startswith("signal")


def run_cell(config: ExperimentConfig, cache_root: Path | None, progress: bool, threads: int | None) -> str:
    """One grid cell, resumed when its state file exists. Runs in a worker process when parallel."""
    if threads is not None:  # a worker process: its lines interleave with others, so no progress bars
        import torch
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()
    prefix = "" if threads is None else f"[{config.name}] "
    resume = (config.run_dir / STATE_FILE).is_file()
    ActiveLearningRun(config, cache_root=cache_root, progress=progress,
                      log=lambda line: print(prefix + line, flush=True)).run(resume=resume)
    return config.name


def settings(base: ExperimentConfig) -> list[ExperimentConfig]:
    """One base config per (task, pool fraction) of the grid; just ``base`` when neither list is set."""
    grid = base.experiment
    if not grid.tasks and not grid.pool_fractions:
        return [base]
    out = []
    for task in grid.tasks or [base.data.task]:
        for fraction in grid.pool_fractions or [None]:
            config = copy.deepcopy(base)
            config.data.task = task
            if fraction is not None:
                config.data.pool_fraction, config.data.pool_size = fraction, None
            pool = (f"{config.data.pool_size}" if config.data.pool_size is not None
                    else f"{100 * (config.data.pool_fraction or 0):g}pct")
            config.output_dir, config.name = str(base.run_dir), f"{Path(task).stem}-pool{pool}"
            out.append(config)
    return out


def run_experiment(
    base: ExperimentConfig, *, cache_root: Path | None = None, progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Path]]:
    """Every method with every seed (resuming what exists) for every setting, then their reports.

    With ``experiment.parallel_runs > 1`` the pool-based cells run in that many spawned
    processes with the CPU threads split between them; a failing cell stops the grid with
    its error after the running cells finish (their results are kept for the next resume).
    """
    from signal_al.strategies import get_strategy

    for method in base.experiment.methods:
        get_strategy(strategy_of(method))  # unknown names fail before any run starts
    groups = settings(base)
    cells = [run_config(group, method, seed) for group in groups
             for seed in range(base.experiment.seeds) for method in base.experiment.methods]
    parallel = [cell for cell in cells if not uses_generator(cell.active_learning.strategy)]
    jobs = min(base.experiment.parallel_runs, len(parallel))
    if jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        log(f"running {len(parallel)} pool-based runs, {jobs} at a time with {threads} thread(s) each")
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_cell, cell, cache_root, False, threads) for cell in parallel]
            for future in futures:
                log(f"=== finished {future.result()}")
        cells = [cell for cell in cells if uses_generator(cell.active_learning.strategy)]
    for config in cells:
        log(f"=== {config.name} -> {config.run_dir}")
        run_cell(config, cache_root, progress, None)
    return [write_report(group.run_dir, title=f"{group.data.task} ({group.name}): test accuracy vs acquired labels")
            for group in groups]
