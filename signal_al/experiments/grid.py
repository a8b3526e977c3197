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
from signal_al.core.run_layout import BASELINES_DIR, STATE_FILE
from signal_al.engine.context import RunContext
from signal_al.engine.loop import ActiveLearningRun
from signal_al.engine.methods import SIGNAL_VARIANTS, strategy_of, uses_generator
from signal_al.engine.store import RunStore, resume_with
from signal_al.experiments.report import write_report


def check_run_folders(configs: list[ExperimentConfig]) -> None:
    """Before any run starts: every run folder is resumable (a readable state and config) or free for a new run.

    So a grid or a run with baselines stops with its one-line error before it writes anything,
    not after hours of other runs.
    """
    for config in configs:
        store = RunStore(config.run_dir)
        if store.load_state() is None:
            store.check_new(config)
        else:
            store.saved_config()  # a started cell continues with it


def grid_seeds(base: ExperimentConfig) -> range:
    """The seeds this grid command runs: ``experiment.seeds`` of them from ``experiment.first_seed``."""
    return range(base.experiment.first_seed, base.experiment.first_seed + base.experiment.seeds)


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
    check_run_folders([baseline_config(config, method) for method in config.active_learning.baselines])
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


def run_cell(config: ExperimentConfig, cache_root: Path | None, progress: bool, threads: int | None) -> str:
    """One grid cell, resumed when its state file exists. Runs in a worker process when parallel."""
    if threads is not None:  # a worker process: its lines interleave with others, so no progress bars
        import torch
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()
    prefix = "" if threads is None else f"[{config.name}] "
    log = lambda line: print(prefix + line, flush=True)  # noqa: E731
    resume = (config.run_dir / STATE_FILE).is_file()
    config = resume_with(config, source="the grid", log=log)  # as `signal-al run --resume` does
    if threads is not None and _SLOT is not None:
        config = on_slot(config, _SLOT)
    ActiveLearningRun(config, cache_root=cache_root, progress=progress, log=log).run(resume=resume)
    return config.name


#: This worker process's slot among the parallel generator runs (None in the main process).
_SLOT: int | None = None


def on_slot(config: ExperimentConfig, slot: int) -> ExperimentConfig:
    """The cell's config in slot ``slot``: its own server port (server_url's port + slot)."""
    from urllib.parse import urlparse

    url = urlparse(config.generator.server_url)
    config = copy.deepcopy(config)
    config.generator.server_url = url._replace(netloc=f"{url.hostname}:{(url.port or 8000) + slot}").geturl()
    return config


def visible_gpus() -> list[str]:
    """The GPU ids this process may use (CUDA_VISIBLE_DEVICES order), without creating a CUDA context."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def gpu_of_slot(slot: int, gpus: list[str]) -> str | None:
    """Slot s runs on GPU s, round-robin when there are fewer GPUs than slots; None without GPUs."""
    return gpus[slot % len(gpus)] if gpus else None


def _claim_slot(slots, gpus: list[str]) -> None:
    """Process-pool initializer: take a free slot, and pin the worker (and its server) to that slot's GPU."""
    global _SLOT
    _SLOT = slots.get()
    gpu = gpu_of_slot(_SLOT, gpus)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def _run_in_processes(cells: list[ExperimentConfig], jobs: int, cache_root: Path | None,
                      log: Callable[[str], None], *, slots: bool) -> None:
    """``cells`` in ``jobs`` spawned processes (cpu_count/jobs threads each); with ``slots``, one port/GPU each."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = get_context("spawn")
    init: dict = {}
    if slots:
        queue = context.Queue()
        for slot in range(jobs):
            queue.put(slot)
        gpus = visible_gpus()
        if gpus and len(gpus) < jobs:
            log(f"{jobs} generator runs share {len(gpus)} GPU(s): each server needs --gpu-memory-utilization "
                f"in generator.server_args small enough for all of them")
        init = {"initializer": _claim_slot, "initargs": (queue, gpus)}
    with ProcessPoolExecutor(jobs, mp_context=context, **init) as pool:
        futures = [pool.submit(run_cell, cell, cache_root, False, threads) for cell in cells]
        for future in futures:
            log(f"=== finished {future.result()}")


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
    processes with the CPU threads split between them, and with
    ``experiment.parallel_generator_runs > 1`` so do the SIGnAL-family cells, each worker on
    its own server port and GPU. A failing cell stops the grid with its error after the
    running cells finish (their results are kept for the next resume).
    """
    from signal_al.data import check_task
    from signal_al.strategies import get_strategy

    for method in base.experiment.methods:
        get_strategy(strategy_of(method))  # unknown names fail before any run starts
    groups = settings(base)
    for group in groups:
        check_task(group.data.task)  # so do unknown tasks and missing data files
    cells = [run_config(group, method, seed) for group in groups
             for seed in grid_seeds(base) for method in base.experiment.methods]
    RunStore(base.run_dir).check_folder()
    check_run_folders(cells)
    parallel = [cell for cell in cells if not uses_generator(cell.active_learning.strategy)]
    jobs = min(base.experiment.parallel_runs, len(parallel))
    if jobs > 1:
        log(f"running {len(parallel)} pool-based runs, {jobs} at a time "
            f"with {max(1, (os.cpu_count() or 1) // jobs)} thread(s) each")
        _run_in_processes(parallel, jobs, cache_root, log, slots=False)
        cells = [cell for cell in cells if uses_generator(cell.active_learning.strategy)]
    generator_cells = [cell for cell in cells if uses_generator(cell.active_learning.strategy)]
    jobs = min(base.experiment.parallel_generator_runs, len(generator_cells))
    if jobs > 1:
        first_of_setting = {cell.output_dir: cell for cell in reversed(generator_cells)}.values()
        for cell in first_of_setting:  # the model annotator is trained once per setting here; workers load it
            if cell.active_learning.annotator == "model":
                RunContext(cell, cache_root=cache_root, progress=progress, log=log).model_annotator()
        log(f"running {len(generator_cells)} generator runs, {jobs} at a time, each with its own server port")
        _run_in_processes(generator_cells, jobs, cache_root, log, slots=True)
        cells = [cell for cell in cells if not uses_generator(cell.active_learning.strategy)]
    for config in cells:
        log(f"=== {config.name} -> {config.run_dir}")
        run_cell(config, cache_root, progress, None)
    return [write_report(group.run_dir, title=f"{group.data.task} ({group.name}): test accuracy vs acquired labels")
            for group in groups]
