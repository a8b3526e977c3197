"""``signal-al run|resume|experiment``: active learning runs and methods x seeds grids."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.options import (add_cache_arg, add_config_args, add_config_flag, cache, console, load_config, log,
                                   printable)

def print_rounds(state) -> None:
    """The per-round table; SIGnAL rounds add the generator's columns."""
    from rich.table import Table

    generating = any(row.get("reward_mean") is not None or "adapter" in row for row in state.metrics)
    columns = ["round", "labeled", "acquired", "synthetic", "accuracy", "macro-F1", "class std"]
    if generating:
        columns += ["syn. selected", "reward mean", "KL(new‖base)", "held-out gain [95 % CI]", "served Δlogp",
                    "dropped", "distinct-2", "seconds"]
    table = Table(title="rounds")
    for column in columns:
        table.add_column(column, justify="right")

    def number(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    previous = 0
    for row in state.metrics:
        cells = [str(row["round"]), str(row["n_labeled"]), f"{row['acquired_pct']:.0f} %", str(row["n_synthetic"]),
                 f"{row['accuracy']:.4f}", f"{row['macro_f1']:.4f}", f"{row['class_count_std']:.2f}"]
        if generating:
            cells += [synthetic_cell(row, previous), number(row.get("reward_mean"), ".3g"),
                      number(row.get("kl_new_base"), ".3g"), heldout_cell(row),
                      number(row.get("served_logprob_mae"), ".1e"), number(row.get("dropped_fraction"), ".0%"),
                      number(row.get("distinct_2"), ".2f"), number(sum((row.get("seconds") or {}).values()), ".0f")]
        table.add_row(*cells)
        previous = row["n_labeled"]
    console().print(table)


def synthetic_cell(row: dict, previous: int) -> str:
    """The round's synthetic picks and their share of its labels: '12 (20 %)'."""
    n = row.get("n_synthetic_selected")
    if n is None:
        return "-"
    return f"{n} ({100 * n / max(row['n_labeled'] - previous, 1):.0f} %)"


def heldout_cell(row: dict) -> str:
    """The held-out paired gain of the new adapter over the base model: '+12 % [-3, +27]'."""
    gain, lo, hi = row.get("heldout_gain_pct"), row.get("heldout_gain_lo_pct"), row.get("heldout_gain_hi_pct")
    if gain is None:
        return "-"
    return f"{gain:+.0f} %" + (f" [{lo:+.0f}, {hi:+.0f}]" if lo is not None and hi is not None else "")


def print_comparison(run_dir: Path, paths: dict[str, Path]) -> None:
    """The run against its same-seed baselines at each acquired %, and where the plot is."""
    import pandas as pd
    from rich.table import Table

    from signal_al.evaluation.report import collect_metrics

    frame = collect_metrics(run_dir)
    pivot = frame.pivot_table(index="acquired_pct", columns="strategy", values="accuracy")
    main = str(frame[frame["run"] == run_dir.name]["strategy"].iloc[0])
    others = [c for c in pivot.columns if c != main]
    table = Table(title=printable(f"test accuracy: {main} vs the same seed's baselines"))
    for column in ["acquired", main, *others, *[f"{main} - {o}" for o in others]]:
        table.add_column(printable(str(column)), justify="right")
    for pct, row in pivot.iterrows():
        cells = [f"{pct:g} %", *[("-" if pd.isna(row[c]) else f"{100 * row[c]:.1f}") for c in [main, *others]]]
        cells += ["-" if pd.isna(row[main]) or pd.isna(row[o]) else f"{100 * (row[main] - row[o]):+.1f}"
                  for o in others]
        table.add_row(*cells)
    console().print(table)
    line = ceiling_line(frame, main)
    if line:
        print(printable(line))
    print(f"plot: {paths['accuracy']}")


def ceiling_line(frame, main: str) -> str | None:
    """The pool-based reference (the best point of any pool-based mean curve), the pool-based mean
    at 100 % of the pool, and where ``main`` got past the pool against the reference."""
    from signal_al.evaluation.endpoints import pool_reference

    reference = pool_reference(frame)
    if reference is None:
        return None
    text = (f"pool-based reference (best point of a pool-based curve): {reference.strategy} at {reference.pct:g} %: "
            f"{100 * reference.value:.1f}")
    if reference.mean_at_full is not None:
        text += f"; pool-based mean at 100 %: {100 * reference.mean_at_full:.1f}"
    means = frame.groupby(["strategy", "acquired_pct"], as_index=False)["accuracy"].mean()
    beyond = means[(means["strategy"] == main) & (means["acquired_pct"] > 100.0 + 1e-6)].sort_values("acquired_pct")
    for _, row in beyond.iterrows():
        text += (f"; {main} at {row['acquired_pct']:g} %: {100 * row['accuracy']:.1f} "
                 f"({100 * (row['accuracy'] - reference.value):+.1f} points)")
    return text


def run_or_wait(config, *, resume: bool, cache_root: Path) -> int:
    """Run ``config`` with its baselines; a batch waiting for human labels ends cleanly (exit 0)."""
    from signal_al.experiment import run_with_baselines
    from signal_al.oracle import AnnotationRequired

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
    """The run's closing summary in plain words (:func:`signal_al.evaluation.summary.plain_summary`)."""
    from signal_al.evaluation.summary import plain_summary

    baselines, reference = [], None
    if paths is not None:
        from signal_al.evaluation.endpoints import pool_reference
        from signal_al.evaluation.report import collect_metrics

        frame = collect_metrics(paths["accuracy"].parent)
        main = state.metrics[0]["strategy"] if state.metrics else None
        baselines = frame[frame["strategy"] != main].to_dict("records")
        found = pool_reference(frame)
        if found is not None:
            reference = (found.strategy, found.pct, found.value)
    lines = plain_summary(state.metrics, baselines, reference, test_rows=config.data.max_test_size)
    if lines:
        print("\nIn plain words:")
        for line in lines:
            print(printable(f"- {line}"))


def cmd_run(args: argparse.Namespace) -> int:
    from signal_al.run_store import STATE_FILE, ignored_keys_note, resumed_config

    config = load_config(args)
    if args.resume and (config.run_dir / STATE_FILE).is_file():
        config, ignored = resumed_config(config)  # a run continues with the config it started with
        if ignored:
            log(f"signal-al: note: --resume {ignored_keys_note(config.run_dir, ignored, 'the command line')}")
    return run_or_wait(config, resume=args.resume, cache_root=cache(args))


def cmd_resume(args: argparse.Namespace) -> int:
    from signal_al.loop import saved_config

    return run_or_wait(saved_config(Path(args.run_dir)), resume=True, cache_root=cache(args))


def cmd_experiment(args: argparse.Namespace) -> int:
    from signal_al.experiment import run_experiment

    config = load_config(args)
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
        description="Continue the run saved in RUN_DIR with its saved config. With the human annotator, this "
        "imports the filled annotation file (every label is checked) and goes on to the next batch.",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="A run directory (holds config.yaml and state.json).")
    add_cache_arg(resume)
    resume.set_defaults(handler=cmd_resume)

    experiment = commands.add_parser(
        "experiment", help="Run methods x seeds and write the results table and plot.", formatter_class=formatter,
        description="Run every method with every seed (the same seed gives every method the same pool and seed "
        "set), resuming runs that exist with their saved config (as run --resume does), then write results.md/.csv and accuracy.png in output_dir/name.",
        epilog="example:\n  signal-al experiment -c configs/pool_rt_movies.yaml --methods random,entropy --seeds 2",
    )
    add_config_args(experiment)
    add_config_flag(experiment, "experiment.methods", "--methods", metavar="METHODS")
    add_config_flag(experiment, "experiment.seeds", "--seeds")
    add_config_flag(experiment, "output_dir", "--output-dir")
    add_cache_arg(experiment)
    experiment.set_defaults(handler=cmd_experiment)


__all__ = ["add_parser", "cmd_experiment", "cmd_resume", "cmd_run", "print_comparison",
           "print_rounds"]
