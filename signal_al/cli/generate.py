"""``signal-al generate``: new examples from in-context prompts over a task's real pool."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.options import (add_cache_arg, add_config_args, add_config_flag, cache, config_from_args, log,
                                   output_file, positive_int, printable)
from signal_al.core.errors import UserError


def add_generator_flags(parser: argparse.ArgumentParser, *, source: str = "the config's",
                        negatable: bool = False) -> None:
    """``--backend``, ``--server-url`` and ``--start-server`` (with ``negatable``, also ``--no-start-server``)."""
    add_config_flag(parser, "generator.backend", "--backend", source=source)
    add_config_flag(parser, "generator.server_url", "--server-url", source=source)
    add_config_flag(parser, "generator.start_server", "--start-server", source=source,
                    action=argparse.BooleanOptionalAction if negatable else "store_true")


def check_adapter(adapter: str | None) -> None:
    """A LoRA adapter folder given on the command line exists and is one (before any server starts)."""
    if adapter is None:
        return
    path = Path(adapter)
    if not path.exists():
        raise UserError(f"{adapter}: no such adapter folder")
    if not path.is_dir() or not (path / "adapter_config.json").is_file():
        raise UserError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")


def cmd_generate(args: argparse.Namespace) -> int:
    from signal_al.data import load_task, real_pool
    from signal_al.generation.generator import create_generator, generate_kept
    from signal_al.generation.records import write_jsonl
    from signal_al.generation.server.process import managed_server

    config = config_from_args(args)
    check_adapter(args.adapter)
    with managed_server(config.generator, log=log):
        if config.generator.backend == "vllm-server":  # fail fast, before loading data and tokenizer
            from signal_al.generation.backends.server import VLLMServerBackend

            VLLMServerBackend(config.generator.server_url, retries=config.generator.request_retries).check()
        data = load_task(config.data, cache_root=cache(args))
        pool = real_pool(data, config.data, seed=config.seed)
        generator = create_generator(config.generator, data.spec, seed=config.seed)
        if args.adapter:
            generator.load_adapter(args.adapter, round_index=0)
        kept, every = generate_kept(generator, pool, args.n, seed=config.seed)
        generator.backend.close()
    if args.output:
        write_jsonl(every, args.output, append=False)
    for i, candidate in enumerate(kept, start=1):
        pair = f"  ||  {printable(candidate.text_pair)}" if candidate.text_pair else ""
        print(f"{i:3d}. {printable(candidate.text)}{pair}")
    reasons: dict[str, int] = {}
    for candidate in every:
        if not candidate.kept:
            reasons[candidate.drop_reason or "?"] = reasons.get(candidate.drop_reason or "?", 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    log(f"{len(kept)} kept of {len(every)} generated (dropped: {summary})")
    return 0 if len(kept) == args.n else 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate", help="Write new examples from in-context prompts over the task's real pool.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the paper's in-context prompts from the real pool, generate one candidate per prompt, "
        "clean and deduplicate them, and print the kept ones (asking again for dropped ones). The default backend "
        "is a vLLM server at generator.server_url: start one with `signal-al serve-generator`, or pass "
        "--start-server, or use --backend transformers.",
        epilog="examples:\n  signal-al generate --task rt-movies --n 32 --start-server\n"
        "  signal-al generate --task rt-movies --n 8 --backend transformers --output candidates.jsonl",
    )
    add_config_flag(generate, "data.task", "--task")
    generate.add_argument("--n", type=positive_int, default=32, help="Number of kept candidates to print (default 32).")
    add_generator_flags(generate)
    add_config_flag(generate, "generator.model", "--model")
    generate.add_argument("--adapter", metavar="DIR", help="A LoRA adapter folder to generate with.")
    add_config_flag(generate, "seed", "--seed")
    generate.add_argument("--output", metavar="FILE", type=output_file, help="Write every candidate (kept and dropped) as JSON lines.")
    add_config_args(generate)
    add_cache_arg(generate)
    generate.set_defaults(handler=cmd_generate)


__all__ = ["add_generator_flags", "add_parser", "check_adapter", "cmd_generate"]
