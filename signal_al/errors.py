"""User-facing errors.

Anything a user can cause by a wrong config key, a bad path or a malformed data file is
raised as a :class:`UserError` subclass; the CLI prints its message on one line and exits
with code 2 instead of showing a traceback.
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
