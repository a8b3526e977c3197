"""``signal-al run|resume|experiment``: active learning runs and methods x seeds grids."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.options import (add_cache_arg, add_config_args, add_config_flag, add_set_arg, cache,
                                   config_from_args, config_pairs, console, log, printable)


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table on stdout, right-aligned, data escaped."""
    from rich.table import Table

    table = Table(title=printable(title))
    for column in columns:
        table.add_column(printable(column), justify="right")
    for cells in rows:
        table.add_row(*[printable(cell) for cell in cells])
    console().print(table)


def print_rounds(state) -> None:
    """The per-round table (:func:`signal_al.experiments.run_summary.rounds_table`)."""
    from signal_al.experiments.run_summary import rounds_table

    print_table("rounds", *rounds_table(state.metrics))


def print_comparison(run_dir: Path, paths: dict[str, Path]) -> None:
    """The run against its same-seed baselines at each acquired %, and where the plot is."""
    from signal_al.experiments.run_summary import baseline_comparison

    main, columns, rows, ceiling = baseline_comparison(run_dir)
    print_table(f"test accuracy: {main} vs the same seed's baselines", columns, rows)
    if ceiling:
        print(printable(ceiling))
    print(f"plot: {paths['accuracy']}")


def run_or_wait(config, *, resume: bool, cache_root: Path) -> int:
    """Run ``config`` with its baselines; a batch waiting for human labels ends cleanly (exit 0)."""
    from signal_al.engine.annotation.oracle import AnnotationRequired
    from signal_al.experiments.grid import run_with_baselines

    try:
        state, paths = run_with_baselines(config, resume=resume, cache_root=cache_root)
    except AnnotationRequired as waiting:
        print(f"signal-al: waiting for annotation: {waiting}")
        return 0
    print_rounds(state)
    if paths is not None:
        print_comparison(paths["accuracy"].parent, paths)
    print_summary(state, paths, config)
    return 0


def print_summary(state, paths, config) -> None:
    """The run's closing summary in plain words (:func:`signal_al.experiments.run_summary.closing_summary`)."""
    from signal_al.experiments.run_summary import closing_summary

    runs_dir = paths["accuracy"].parent if paths is not None else None
    lines = closing_summary(state.metrics, runs_dir, test_rows=config.data.max_test_size)
    if lines:
        print("\nIn plain words:")
        for line in lines:
            print(printable(f"- {line}"))


def resume_note(line: str) -> None:
    log(f"signal-al: {line}")


def cmd_run(args: argparse.Namespace) -> int:
    from signal_al.engine.store import resume_with

    config = config_from_args(args)
    if args.resume:  # a run continues with the config it started with
        config = resume_with(config, source="the command line", log=resume_note)
    return run_or_wait(config, resume=args.resume, cache_root=cache(args))


def cmd_resume(args: argparse.Namespace) -> int:
    """``resume RUN_DIR``: the saved config with the command line's settings on top, then the resume
    protocol of ``run --resume`` (:func:`signal_al.engine.store.resume_with`)."""
    from signal_al.engine.store import RunStore, resume_with

    given = RunStore(Path(args.run_dir)).saved_config(args.overrides, config_pairs(args))
    config = resume_with(given, source="the command line", log=resume_note)
    return run_or_wait(config, resume=True, cache_root=cache(args))


def cmd_experiment(args: argparse.Namespace) -> int:
    from signal_al.experiments.grid import run_experiment

    config = config_from_args(args)
    for paths in run_experiment(config, cache_root=cache(args)):
        print(f"## {paths['markdown'].parent}\n")
        print(printable(paths["markdown"].read_text(), newlines=True))
        for kind, path in paths.items():
            print(f"{kind}: {path}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    run = commands.add_parser(
        "run", help="Run active learning for one strategy and seed (resumable).", formatter_class=formatter,
        description="Rounds of select -> annotate -> retrain -> evaluate, persisted after every round in "
        "output_dir/name. Interrupted runs continue with --resume and end exactly as an uninterrupted run. "
        "--resume keeps the run's saved config except active_learning.stop_fraction (a larger one continues a "
        "finished run, e.g. SIGnAL from 100 % of the pool to 200 %) and where it runs: device, the generator's "
        "server URLs, interpreter and HTTP settings, and the experiment section.",
        epilog="examples:\n  signal-al run -c configs/pool_rt_movies.yaml --set active_learning.strategy=badge\n"
        "  signal-al run -c configs/pool_rt_movies.yaml --resume\n"
        "  signal-al run -c configs/demo.yaml --resume --set active_learning.stop_fraction=2.0",
    )
    add_config_args(run)
    run.add_argument("--resume", action="store_true", help="Continue the run in output_dir/name.")
    add_cache_arg(run)
    run.set_defaults(handler=cmd_run)

    resume = commands.add_parser(
        "resume", help="Continue a saved run (after a crash or after filling a human annotation file).",
        formatter_class=formatter,
        description="Continue the run saved in RUN_DIR with its saved config, as run --resume does: "
        "active_learning.stop_fraction and where it runs (device, the generator's server URLs, interpreter and HTTP "
        "settings, the experiment section) may come from --set or --device; other keys given differ from the run's "
        "protocol and are ignored, with a note. With the human annotator, this imports the filled annotation file "
        "(every label is checked) and goes on to the next batch.",
        epilog="examples:\n  signal-al resume runs/demo\n"
        "  signal-al resume runs/demo --device cuda --set active_learning.stop_fraction=2.0",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="A run directory (holds config.yaml and state.json).")
    add_set_arg(resume, help="Override a key of the saved config, e.g. --set generator.server_url=http://host:8001 "
                "(repeatable; only the keys run --resume takes are used).")
    add_config_flag(resume, "device", "--device", source="the run's")
    add_cache_arg(resume)
    resume.set_defaults(handler=cmd_resume)

    experiment = commands.add_parser(
        "experiment", help="Run methods x seeds and write the results table and plot.", formatter_class=formatter,
        description="Run every method with every seed (the same seed gives every method the same pool and seed "
        "set), resuming runs that exist with their saved config (as run --resume does), then write results.md/.csv and accuracy.png in output_dir/name.",
        epilog="examples:\n  signal-al experiment -c configs/pool_rt_movies.yaml --methods random,entropy --seeds 2\n"
        "  # one 5-seed grid in two parts (two machines, or two sessions); copy the folders together for the report\n"
        "  signal-al experiment -c configs/grid_endpoints.yaml --seeds 3\n"
        "  signal-al experiment -c configs/grid_endpoints.yaml --first-seed 3 --seeds 2",
    )
    add_config_args(experiment)
    add_config_flag(experiment, "experiment.methods", "--methods", metavar="METHODS")
    add_config_flag(experiment, "experiment.seeds", "--seeds")
    add_config_flag(experiment, "experiment.first_seed", "--first-seed")
    add_config_flag(experiment, "output_dir", "--output-dir")
    add_cache_arg(experiment)
    experiment.set_defaults(handler=cmd_experiment)


__all__ = ["add_parser", "cmd_experiment", "cmd_resume", "cmd_run", "print_comparison", "print_rounds", "print_table"]
