"""Arguments shared by several commands, and flags derived from the config dataclasses.

A flag that mirrors a config key (``--backend`` for ``generator.backend``) is declared with
:func:`add_config_flag`: its type, choices and help come from the field of
:class:`~signal_al.config.ExperimentConfig` (see :func:`signal_al.core.config_io.field`), and
its value reaches the config as a structured ``(key, value)`` pair (:func:`config_pairs`),
applied after the ``--set`` overrides, never as a hand-built ``--set`` string.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import re
import types
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence, TextIO, Union, get_args, get_origin, get_type_hints


CONFIG_FLAG_PREFIX = "config:"
"""Namespace attributes named ``config:<dotted key>`` hold the config flags that were given."""


def console():
    """A rich console for the command's tables on stdout.

    Markup is off, so text from data files, configs and run folders (``[/x]``, ``[bold]``) prints as
    it is instead of raising or restyling; style with ``rich.text.Text``. When stdout is not a
    terminal (a log file, CI, SLURM, ``tee``) tables print whole instead of cut to 80 columns.
    """
    from rich.console import Console

    out = Console(markup=False, emoji=False)
    if not out.is_terminal:
        out.width = 100_000  # tables are as wide as their content (they do not expand)
    return out


def heading(out, title: str) -> None:
    """A section heading: a horizontal rule with ``title``, at most 100 columns wide (a log's console
    is 100,000 columns wide for its tables, and a rule would fill all of them)."""
    from rich.rule import Rule

    out.print(Rule(title), width=min(out.width, 100))


# --- output that is not a terminal ----------------------------------------------------------------

class PlainLines(io.TextIOBase):
    """A text stream for logs: progress bars' carriage returns become whole lines.

    tqdm redraws a bar with ``\r`` (and moves between nested bars with ANSI cursor codes); in a
    file that makes one line of thousands of characters. Here every redraw becomes its own line
    (blank ones dropped); :func:`signal_al.core.progress.bar_options` keeps them few.
    """

    def __init__(self, stream: TextIO) -> None:
        import re

        super().__init__()
        self.stream = stream
        self.pending = ""
        self.redraw = False  # ``pending`` is a bar drawn after a carriage return
        self.codes = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def buffer(self):  # bytes written here bypass the line handling
        return self.stream.buffer

    def write(self, text: str) -> int:
        if self.redraw and self.pending and not text.startswith(("\r", "\n")):
            self._emit(self.pending)  # a plain message after a bar: the bar gets its own line
            self.pending = ""
        cleaned = self.codes.sub("", text)
        if "\r" in cleaned:
            self.redraw = True
        elif "\n" in cleaned:
            self.redraw = False
        parts = (self.pending + cleaned.replace("\r", "\n")).split("\n")
        self.pending = parts.pop()
        for line in parts:
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        if line.strip():
            self.stream.write(line.rstrip() + "\n")

    def flush(self) -> None:
        if self.pending and not self.redraw:
            self._emit(self.pending)
            self.pending = ""
        self.stream.flush()

    def close_pending(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = ""
        self.stream.flush()


@contextlib.contextmanager
def plain_output() -> Iterator[None]:
    """While a command runs with stderr not a terminal: progress bars as occasional plain lines.

    Routes stderr through :class:`PlainLines` and transformers' bars through
    :func:`signal_al.core.progress.library_bars`; the project's own bars come from
    :func:`signal_al.core.progress.progress_bar`, which sees that stderr is not a terminal. Together: a
    bar's first line after 30 s, then at most one every 30 s, and its last. In a terminal it
    changes nothing.
    """
    import sys

    from signal_al.core.progress import is_terminal, library_bars

    stream = sys.stderr
    if stream is None or is_terminal(stream):
        yield
        return
    plain = PlainLines(stream)
    sys.stderr = plain
    try:
        with library_bars():
            yield
    finally:
        plain.close_pending()
        if sys.stderr is plain:
            sys.stderr = stream


# --- counts and ports on the command line ---------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _bounded_int(text, 1, None, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0, None, "an integer >= 0")


def port(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    return _bounded_int(text, 1, 65535, "a port from 1 to 65535")


def _bounded_int(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (nan, inf and 0 are refused, naming the flag)."""
    return _bounded_float(text, "a finite number > 0", lambda value: value > 0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _bounded_float(text, "a finite number >= 0", lambda value: value >= 0)


def _bounded_float(text: str, what: str, ok) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def device(text: str) -> str:
    """argparse type: a device setting spelled as the config's ``device`` is (auto, cpu, mps, cuda, cuda:N);
    whether this machine has it is checked where it is resolved (:func:`signal_al.core.runtime.resolve_device`)."""
    from signal_al.core.runtime import device_problem

    problem = device_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_file(text: str) -> str:
    """argparse type: a file to write: not a folder, and no parent of it is a file (checked before any work)."""
    problem = output_path_problem(Path(text), folder=False)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_folder(text: str) -> str:
    """argparse type: a folder to write into: not a file, and no parent of it is a file."""
    problem = output_path_problem(Path(text), folder=True)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_path_problem(path: Path, *, folder: bool) -> str | None:
    """Why nothing can be written at ``path`` (a file, or a folder with ``folder``), or None."""
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder; give a file name"
        return None
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{parent} is a file, so {path} cannot be created under it"
    return None


#: Characters that would act on a terminal instead of showing: C0/C1 controls (escape sequences,
#: carriage returns, bells) and the bidirectional overrides that reorder what a line shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, newlines: bool = False) -> str:
    r"""``text`` safe to print: control characters shown escaped (``\x1b``, ``\r``, ``\u202e``), so text
    from data files, runs and requests cannot move the cursor, recolour or rewrite the terminal.
    With ``newlines``, line breaks stay (multi-line output such as a report); tabs always stay.

    >>> printable("\x1b[31mred\x1b[0m a\nb")
    '\\x1b[31mred\\x1b[0m a\\nb'
    """
    def escape(match: re.Match) -> str:
        char = match.group()
        if char == "\t" or (newlines and char == "\n"):
            return char
        if char in _NAMED_ESCAPES:
            return _NAMED_ESCAPES[char]
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _UNPRINTABLE.sub(escape, text)


def log(message: str) -> None:
    """Progress for humans on stderr, so stdout stays the command's result."""
    import sys

    print(message, file=sys.stderr, flush=True)


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``signal-al: error: <command>: <problem> (see ... --help)``."""

    def error(self, message: str):  # type: ignore[override]
        command = self.prog.removeprefix("signal-al").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"signal-al: error: {where}{message} (see `{self.prog} --help`)\n")


# --- --config, --set, --cache-dir ---------------------------------------------------------------


def add_set_arg(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=help or "Override a config key, e.g. --set reward.k=5 --set data.task=vader-sources (repeatable).",
    )


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML experiment config (see configs/).")
    add_set_arg(parser)


def add_cache_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", metavar="DIR", default=None,
        help="Asset cache (default: $SIGNAL_AL_CACHE, else ~/.cache/signal-al).",
    )


def cache(args: argparse.Namespace) -> Path:
    from signal_al.assets.registry import cache_dir

    return cache_dir(args.cache_dir)


# --- flags derived from config fields -----------------------------------------------------------


def config_field(key: str) -> tuple[dataclasses.Field, Any]:
    """The dataclass field of the dotted config ``key`` and its resolved type hint."""
    from signal_al.config import ExperimentConfig

    cls: Any = ExperimentConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise KeyError(f"no config key {key!r}")
        field, hint = fields[part], get_type_hints(cls)[part]
        if depth < len(parts) - 1:
            if not dataclasses.is_dataclass(hint):
                raise KeyError(f"no config key {key!r}: {'.'.join(parts[:depth + 1])} is not a section")
            cls = hint
    return field, hint


def field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None``; other hints unchanged."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _comma_list(item_type: Any):
    convert = item_type if item_type in (int, float, str) else str

    def parse(text: str) -> list:
        return [convert(part.strip()) for part in text.split(",") if part.strip()]

    parse.__name__ = f"comma-separated {convert.__name__} list"  # argparse names it in errors
    return parse


def _argparse_kwargs(hint: Any) -> dict[str, Any]:
    """``type``, ``choices`` or ``action`` for a field's type hint (``X | None`` behaves as ``X``)."""
    hint = _without_none(hint)
    origin = get_origin(hint)
    if origin is Literal:
        return {"choices": get_args(hint)}
    if origin in (list, tuple):
        return {"type": _comma_list((get_args(hint) or (str,))[0])}
    if hint is bool:
        return {"action": "store_true"}
    if hint in (int, float, str):
        return {"type": hint}
    if origin in (Union, types.UnionType):
        return {"type": str}  # e.g. str | int: the config checks the value
    raise TypeError(f"no command-line flag for a config field of type {hint!r}")


def _format_default(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def add_config_flag(parser: argparse.ArgumentParser, key: str, *flags: str, source: str = "the config's",
                    override: bool = True, **kwargs: Any) -> argparse.Action:
    """Add a flag (or, without ``flags``, a positional) that mirrors the config field ``key``.

    Type, choices and help come from the field; ``kwargs`` refine them (``nargs``, ``metavar``,
    ``action``); list fields take comma-separated values. With ``override`` (the default) a
    given value becomes the pair ``(key, value)`` of :func:`config_pairs` and an absent flag
    leaves the config alone (``source`` names where its value then comes from); without it,
    the value lands in ``dest`` (default: the field name) with the field's default, for
    commands that build a config section themselves.
    """
    field, hint = config_field(key)
    spec = {**_argparse_kwargs(hint), **kwargs}
    if spec.get("action") not in (None, "store"):
        spec.pop("type", None)
    if "type" in spec and flags:
        spec.setdefault("metavar", flags[0].lstrip("-").upper().replace("-", "_"))
    default = field_default(field)
    text = str(field.metadata.get("help", ""))
    if get_origin(_without_none(hint)) in (list, tuple):
        text += " Comma-separated."
    if override:
        text += f" (default: {source} {key}, built in: {_format_default(default)})"
        spec["default"] = argparse.SUPPRESS
        dest = CONFIG_FLAG_PREFIX + key
    else:
        text += f" (default: {_format_default(default)})"
        spec.setdefault("default", default)
        dest = spec.pop("dest", None) or key.rsplit(".", 1)[-1]
    spec.setdefault("help", text.replace("%", "%%"))  # argparse formats help with %
    if not flags:  # a positional: its name is its dest
        return parser.add_argument(dest, **spec)
    return parser.add_argument(*flags, dest=dest, **spec)


def config_pairs(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The ``(dotted key, value)`` pairs of the config flags given on the command line."""
    return [(name[len(CONFIG_FLAG_PREFIX):], value) for name, value in vars(args).items()
            if name.startswith(CONFIG_FLAG_PREFIX)]


def config_from_args(args: argparse.Namespace):
    """The experiment config a command line gives: the ``--config`` YAML, its ``--set`` overrides, then the
    config flags (:func:`signal_al.core.config_io.load_config`)."""
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config

    return load_config(ExperimentConfig, getattr(args, "config", None), getattr(args, "overrides", []),
                       config_pairs(args))


def override_strings(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    """``KEY=VALUE`` texts that parse back to exactly ``pairs``, for APIs that take ``--set`` strings."""
    import yaml

    def text(value: Any) -> str:
        dumped = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
        return dumped.removesuffix("...\n").strip()  # a plain scalar ends its document with '...'

    return [f"{key}={text(value)}" for key, value in pairs]


__all__ = ["Parser", "PlainLines", "add_cache_arg", "add_config_args", "add_config_flag", "add_set_arg", "cache",
           "config_field", "config_from_args", "config_pairs", "console", "device", "log", "non_negative_float",
           "non_negative_int", "output_file", "output_folder", "output_path_problem", "override_strings",
           "plain_output", "port", "positive_float", "positive_int", "printable"]
