"""``signal-al data describe``: sizes, label counts and example rows of a task or data file."""

from __future__ import annotations

import argparse

from signal_al.cli.options import (add_cache_arg, add_config_args, add_config_flag, cache, config_from_args, console,
                                   non_negative_int, printable)


def cmd_data_describe(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from signal_al.data import load_task, real_pool

    config = config_from_args(args)
    data = load_task(config.data, cache_root=cache(args))
    pool = real_pool(data, config.data, seed=config.seed)
    spec = data.spec
    out = console()
    out.print(Text.assemble((printable(spec.name), "bold"), f": {'text pair' if spec.is_pair else 'single text'} "
                            f"classification, {spec.num_labels} labels"))
    out.print(f"instruction: {printable(spec.instruction)}")
    table = Table(title="label counts")
    table.add_column("label")
    for split_name in ("train", "test", "real pool"):
        table.add_column(split_name, justify="right")
    counts = [split.label_counts(spec.num_labels) for split in (data.train, data.test, pool)]
    for i, name in enumerate(spec.label_names):
        table.add_row(printable(name), *[f"{c[i]} ({c[i] / max(c.sum(), 1):.0%})" for c in counts])
    table.add_row(Text("total", style="bold"), *[str(int(c.sum())) for c in counts])
    out.print(table)
    lengths = [len(t.split()) for t in data.train.texts]
    out.print(f"train text length in words: median {sorted(lengths)[len(lengths) // 2]}, max {max(lengths)}")
    examples = Table(title=f"first {args.rows} train rows")
    examples.add_column("id")
    examples.add_column("label")
    examples.add_column("text", overflow="fold")
    if spec.is_pair:
        examples.add_column("text pair", overflow="fold")
    for i in range(min(args.rows, len(data.train))):
        row = [data.train.ids[i], spec.label_names[data.train.labels[i]], data.train.texts[i]]
        if spec.is_pair and data.train.text_pairs is not None:
            row.append(data.train.text_pairs[i])
        examples.add_row(*[printable(cell) for cell in row])  # text from the file shows, never acts on the terminal
    out.print(examples)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="Inspect tasks and data files.",
                               description="Inspect built-in tasks, hub tasks and local data files.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    describe = actions.add_parser(
        "describe", help="Sizes, label counts and example rows of a task or local file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load a task (rt-movies, vader-sources, sst2, ag_news, qnli) or a local CSV/TSV/JSONL/JSON/"
        "Parquet file and print its splits, label counts, the real pool drawn by the config, and example rows.",
        epilog="examples:\n  signal-al data describe rt-movies\n"
        "  signal-al data describe reviews.csv --text-column review --label-column stars",
    )
    add_config_flag(describe, "data.task", nargs="?", metavar="TASK_OR_FILE")
    add_config_flag(describe, "data.text_column", "--text-column")
    add_config_flag(describe, "data.text_pair_column", "--text-pair-column")
    add_config_flag(describe, "data.label_column", "--label-column")
    add_config_flag(describe, "data.label_names", "--label-names")
    describe.add_argument("--rows", type=non_negative_int, default=5, help="Example rows to show.")
    add_config_args(describe)
    add_cache_arg(describe)
    describe.set_defaults(handler=cmd_data_describe)


__all__ = ["add_parser", "cmd_data_describe"]
