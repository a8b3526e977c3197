"""User-facing errors and warnings.

Anything a user can cause by a wrong config key, a bad path or a malformed data file is
raised as a :class:`UserError` subclass; the CLI prints its message on one line and exits
with code 2 instead of showing a traceback. Input that is accepted but may not mean what it
seems is a :func:`warn`: one ``signal-al: warning:`` line, and the command goes on.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; the CLI shows only the message (exit code 2)."""


class ConfigError(UserError, ValueError):
    """A config file or override is wrong: unknown key, wrong type, value out of range."""


class DataError(UserError, ValueError):
    """A data file or task is wrong: missing file or column, bad label, empty text."""


class AssetError(UserError, RuntimeError):
    """An offline asset could not be fetched, verified or converted."""


class ServerError(UserError, RuntimeError):
    """The generator server could not be installed, started or reached."""


class TrainingDiverged(UserError, ArithmeticError):
    """Training produced a non-finite loss or weights; the message names the setting to change."""


class SignalWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it on one line)."""


def warn(message: str) -> None:
    """Warn about the user's input (data that may not mean what it seems, a risky setting).

    The CLI shows it as one ``signal-al: warning: ...`` line on stderr; library callers get a
    regular :class:`SignalWarning` they can filter or turn into an error.
    """
    import warnings

    warnings.warn(message, SignalWarning, stacklevel=2)
