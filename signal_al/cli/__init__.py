"""The ``signal-al`` command.

One module per command or command group, each with ``add_parser(commands)`` (which sets
the ``handler`` of its subcommands): :mod:`.assets_cmd`, :mod:`.data_cmd`, :mod:`.run`
(run, resume, experiment), :mod:`.report`, :mod:`.config_cmd`, :mod:`.train_generator`,
:mod:`.generate`, :mod:`.evaluate` (evaluate-generator) and :mod:`.serve`
(serve-generator). A handler parses nothing itself: it calls library functions and
prints. A :class:`~signal_al.errors.UserError` (bad config, missing file, unfetched asset)
is printed as one line on stderr with exit code 2, never as a traceback; Ctrl-C exits
with 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from signal_al.cli import (assets_cmd, config_cmd, data_cmd, evaluate, generate, report, run, serve,
                           train_generator)
from signal_al.errors import UserError

COMMAND_MODULES = (assets_cmd, data_cmd, run, report, config_cmd, train_generator, generate, evaluate, serve)
"""In the order ``signal-al --help`` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    from signal_al import __version__

    parser = argparse.ArgumentParser(
        prog="signal-al",
        description="SIGnAL: train an LLM data generator with RL to write the examples a classifier needs most.",
        epilog="Start with `signal-al assets fetch`, then `signal-al data describe rt-movies`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"signal-al {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:  # ConfigError and DataError are UserErrors
        message = " ".join(str(exc).split())
        print(f"signal-al: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signal-al: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
