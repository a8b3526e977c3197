"""The ``signal-al`` command.

One module per command or command group, each with ``add_parser(commands)`` (which sets
the ``handler`` of its subcommands): :mod:`.assets_cmd`, :mod:`.data_cmd`, :mod:`.run`
(run, resume, experiment), :mod:`.report`, :mod:`.config_cmd`, :mod:`.train_generator`,
:mod:`.check_rl`, :mod:`.generate`, :mod:`.evaluate` (evaluate-generator) and :mod:`.serve`
(serve-generator). A handler parses nothing itself: it calls library functions and
prints. A :class:`~signal_al.core.errors.UserError` (bad config, missing file, unfetched asset)
or an ``OSError`` on a path is printed as one line on stderr with exit code 2, never as a
traceback (:func:`error_message` decides); Ctrl-C exits with 130. When stderr is not a
terminal, progress bars print as occasional plain lines (:func:`~signal_al.cli.options.plain_output`).
A :func:`~signal_al.core.errors.warn` about the user's input prints as one ``signal-al: warning:`` line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from signal_al.cli import (assets_cmd, check_annotator, check_rl, config_cmd, data_cmd, evaluate, generate, report, run,
                           score, serve, serve_reward, train_generator)
from signal_al.core.errors import UserError

COMMAND_MODULES = (assets_cmd, data_cmd, run, report, check_annotator, config_cmd, train_generator, check_rl, generate,
                   evaluate, serve, score, serve_reward)
"""In the order ``signal-al --help`` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    from signal_al import __version__

    from signal_al.cli.options import Parser

    parser = Parser(
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


def error_message(exc: BaseException) -> str | None:
    """The one-line message of an error the user caused, or None for a bug (which keeps its traceback).

    The one place that decides which exceptions are the user's: every :class:`UserError`, and
    an ``OSError`` on a path (a folder where a file should be, a file where a folder should be,
    no permission, a full disk). Control characters from data (escape sequences, carriage
    returns) are shown escaped.
    """
    from signal_al.cli.options import printable

    if isinstance(exc, UserError):  # ConfigError, DataError, AssetError, ServerError
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = _path_error(exc)
    else:
        return None
    return " ".join(printable(text, newlines=True).split()) or type(exc).__name__


def _path_error(exc: OSError) -> str:
    """An OSError on a path in words: a file standing where a folder is needed is named as such
    (``mkdir`` of ``out.txt/x`` says "File exists" or "Not a directory" about the wrong thing)."""
    from pathlib import Path

    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        path = Path(exc.filename)
        for candidate in (path, *path.parents):
            if candidate.exists() and not candidate.is_dir():
                if candidate == path and isinstance(exc, FileExistsError):
                    return f"{path}: is a file, where a folder is needed"
                if candidate != path:
                    return f"{path}: {candidate} is a file, not a folder"
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    return f"{where}: {exc.strerror}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings about the user's input as one line on stderr (others as Python shows them)."""
    from signal_al.cli.options import printable
    from signal_al.core.errors import SignalWarning

    if issubclass(category, SignalWarning):
        print(f"signal-al: warning: {printable(' '.join(str(message).split()))}", file=sys.stderr, flush=True)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    from signal_al.cli.options import plain_output
    from signal_al.core.errors import SignalWarning

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    with plain_output(), warnings.catch_warnings():
        warnings.simplefilter("default", SignalWarning)  # each distinct warning once
        warnings.showwarning = _show_warning
        try:
            return int(args.handler(args) or 0)
        except KeyboardInterrupt:
            print("signal-al: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # e.g. `signal-al config keys | head`: the reader went away
            return 0
        except Exception as exc:
            message = error_message(exc)
            if message is None:
                raise
            print(f"signal-al: error: {message}", file=sys.stderr)
            return 2


__all__ = ["build_parser", "error_message", "main"]
