"""Where computation runs and how it is seeded.

A device name is checked twice, the same way for every command: its spelling where it is read
(the config's ``device`` and the ``--device`` flags, :func:`device_problem`, without importing
torch), and that this machine has it where it is resolved (:func:`resolve_device`), which a run
does before it writes anything.
"""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np

from signal_al.core.errors import ConfigError

#: What a device setting may say: auto, cpu, mps, cuda, cuda:N (xpu and xpu:N likewise).
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")


def device_problem(name: str) -> str | None:
    """Why ``name`` is not a device setting, or None when it is one (spelling only)."""
    if DEVICE_PATTERN.fullmatch(name) is None:
        return f"must be auto, cpu, mps, cuda or cuda:N, got {name!r}"
    return None


def resolve_device(name: str = "auto", *, setting: str = "device") -> Any:
    """The ``torch.device`` of a device setting; ``auto`` picks the first CUDA device when there is one.

    A device this machine does not have (``cuda`` without CUDA, ``cuda:3`` with two GPUs, ``mps``
    off a Mac) is a :class:`~signal_al.core.errors.ConfigError` naming ``setting``.
    """
    import torch

    problem = device_problem(name)
    if problem is not None:
        raise ConfigError(f"{setting}: {problem}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type in ("cuda", "xpu"):
        backend = getattr(torch, device.type)
        count = backend.device_count() if backend.is_available() else 0
        if count == 0:
            raise ConfigError(f"{setting}: {name} requested, but this machine has no {device.type.upper()} device "
                              f"(torch.{device.type}.is_available() is False); use cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{setting}: {name} requested, but this machine has {count} {device.type.upper()} "
                              f"device(s) ({device.type}:0 to {device.type}:{count - 1})")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{setting}: mps requested, but this machine has no Apple GPU (torch.backends.mps."
                          "is_available() is False); use cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global RNGs (model init and dropout use them)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
