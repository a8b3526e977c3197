"""Shared test helpers: the offline asset cache (fetched by `make test`, never skipped)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from signal_al.assets import asset_path, cache_dir  # noqa: E402


def ready_asset(name: str) -> Path:
    """Folder of an offline asset; fails (never skips) with the command that fetches it."""
    return asset_path(name, cache_dir())
