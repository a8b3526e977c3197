"""Optional Weights & Biases logging next to the always-written local JSONL.

wandb is only touched when ``wandb.enabled`` is set; ``wandb.mode: offline`` works without
an account. A resumed run logs into the same wandb run (its id is derived from the run dir).
Each round's metrics row is logged once, at step = round, nested keys flattened with ``/``.

Nothing secret reaches wandb: the logged config goes through :func:`redact` (values of keys that
name a key, token, secret or password, ``user:password@`` in URLs, and the values of such flags in
argument lists, e.g. ``generator.server_args: [--api-key, ...]``), and wandb's system metadata
(which records the command line, where a ``--set`` can carry a secret) is not collected.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from signal_al.config import ExperimentConfig
from signal_al.core.config_io import to_dict
from signal_al.core.errors import ConfigError

__all__ = ["REDACTED", "Tracker", "redact", "wandb_run_id"]

REDACTED = "***"
#: A key or flag naming a secret: one of these words between ``_``/``-`` separators (so ``hf_token`` and
#: ``--api-key`` are secrets, ``max_new_tokens`` and ``tokenizer`` are not).
_SECRET_NAME = re.compile(r"(^|[_-])(api[_-]?key|key|token|secret|passw(or)?d|credentials?|auth|private[_-]?key)"
                          r"($|[_-])", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def _redact_string(value: str) -> str:
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)


def _redact_args(values: list) -> list:
    out: list = []
    hide_next = False
    for value in values:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if isinstance(value, str) and value.startswith("-") and _SECRET_NAME.search(value.lstrip("-").split("=")[0]):
            if "=" in value:
                out.append(value.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(value)
                hide_next = True
            continue
        out.append(redact(value))
    return out


def redact(value: Any) -> Any:
    """``value`` (a config dict) with secrets replaced by ``***``.

    >>> redact({"api_key": "sk-1", "url": "http://me:pw@host/x", "args": ["--api-key", "sk-2", "--port", "1"]})
    {'api_key': '***', 'url': 'http://***@host/x', 'args': ['--api-key', '***', '--port', '1']}
    >>> redact({"max_new_tokens": 64, "tokenizer": "t", "args": ["--hf-token=x", "--max-tokens", "8"]})
    {'max_new_tokens': 64, 'tokenizer': 't', 'args': ['--hf-token=***', '--max-tokens', '8']}
    """
    if isinstance(value, dict):
        return {key: REDACTED if isinstance(key, str) and _SECRET_NAME.search(key) and value[key] not in (None, "")
                else redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return _redact_args(list(value))
    if isinstance(value, str):
        return _redact_string(value)
    return value


def _flatten(row: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[f"{prefix}{key}"] = value
    return flat


def wandb_run_id(run_dir: Path) -> str:
    """The wandb run id of a run folder: the same for every (resumed) process on that folder."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


class Tracker:
    """Logs one row per round to wandb when enabled; a no-op otherwise."""

    def __init__(self, config: ExperimentConfig, run_dir: Path) -> None:
        self._run = None
        if not config.wandb.enabled or config.wandb.mode == "disabled":
            return
        import wandb

        try:
            self._run = wandb.init(project=config.wandb.project, entity=config.wandb.entity, name=config.name,
                                   id=wandb_run_id(run_dir), resume="allow", dir=str(run_dir), mode=config.wandb.mode,
                                   config=redact(to_dict(config)),
                                   settings=wandb.Settings(x_disable_meta=True, disable_code=True, disable_git=True))
        except Exception as exc:  # noqa: BLE001 - no login, no network: one line naming the settings, no traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"wandb.enabled: wandb could not start ({type(exc).__name__}: {first}); run `wandb "
                              "login`, or set wandb.mode: offline, or wandb.enabled: false") from None

    def log(self, row: dict, step: int) -> None:
        if self._run is not None:
            self._run.log(_flatten(row), step=step)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
