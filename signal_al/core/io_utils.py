"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Files and folders written here get the permissions the process's umask gives any new file
(0644 and 0755 under the usual umask 022), like ``open`` and ``mkdir`` would: the temporary
file and staging folder they are made in start private (0600, 0700), so a shared run or
cache would otherwise be unreadable to teammates.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only be read by setting it,
    which would briefly give files created by other threads the wrong mode)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path, *, folder: bool = False) -> None:
    """Give ``path`` the mode a new file (``folder``: a new folder) gets under the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes it 0600 whatever the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


#: Byte-order marks and the encodings they announce (UTF-32's before UTF-16's: FF FE starts both).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


_ENCODING_NAMES = {"cp1252": "Windows-1252"}


def decode_text(raw: bytes, source: str | Path, *, fallback: str | None = None) -> str:
    """The text of a file's bytes: UTF-8, or UTF-8/16/32 announced by a byte-order mark (spreadsheets
    save "Unicode text" as UTF-16 with one), else ``fallback`` (e.g. ``cp1252``) when given.

    Anything else is a :class:`~signal_al.core.errors.DataError` about the encoding, naming ``source``,
    rather than whatever a wrong decoding would make of the header or the first row.
    """
    from signal_al.core.errors import DataError

    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(f"{source}: not valid {encoding.upper().replace('-SIG', '')} text though it starts "
                                f"with that byte-order mark ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    if b"\x00" in raw[:4096]:
        raise DataError(f"{source}: not UTF-8 text: it holds NUL bytes (UTF-16 or UTF-32 without a byte-order mark, or "
                        "a binary file); save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if fallback is not None:
            try:
                return raw.decode(fallback)
            except UnicodeDecodeError:
                pass
        also = f" or {_ENCODING_NAMES.get(fallback, fallback)}" if fallback else ""
        raise DataError(f"{source}: not UTF-8{also} text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save it as UTF-8") from None


def json_object_lines(lines: Iterable[str], source: str | Path, *,
                      problem: Callable[[str], str] = lambda what: what) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL text; a line that is not a JSON
    object is a :class:`~signal_al.core.errors.DataError` ``"<source>:<n>: <problem(what)>"``."""
    from signal_al.core.errors import DataError

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{number}: {problem(f'invalid JSON ({exc.msg})')}") from None
        if not isinstance(row, dict):
            raise DataError(f"{source}:{number}: {problem('expected a JSON object per line')}")
        yield number, row


def read_jsonl(path: str | Path) -> list[Any]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it replaces ``target`` whole.

    On any exception the staging folder is removed and ``target`` is left as it was, so a
    reader sees either the old folder or the complete new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        follow_umask(staging, folder=True)  # mkdtemp makes it 0700 whatever the umask
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
