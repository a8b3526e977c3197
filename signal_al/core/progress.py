"""Progress bars that suit where they are written: live in a terminal, a line every 30 s in a log.

tqdm redraws a bar up to ten times a second with a carriage return; a terminal overwrites the
line, a log file (``> log 2>&1``, CI, SLURM) keeps every redraw. Every bar of the project is made
by :func:`progress_bar`, which gives a bar whose stream is not a terminal tqdm's own options for
that: its first line after 30 s (a bar that ends sooner writes nothing), then at most one line
every 30 s, and its last line when it closes. :func:`library_bars` routes transformers' bars
("Loading weights") through the same rule and turns the hub's download bars off. tqdm's ``TQDM_*``
environment variables cannot do this: tqdm reads them once, when it is first imported. Other
libraries' bars: TRL's Trainer bar is off in a log (``disable_tqdm``, its metrics still print),
``datasets``' bars too (hub tasks), vLLM's in-process bar always (``use_tqdm=False``).

A bar's postfix is set with ``refresh=False`` before ``update()``, so that it shows on the next
line the interval allows instead of forcing a redraw of its own.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterable, Iterator, TextIO

LOG_INTERVAL_S = 30.0
"""Seconds between two lines of one bar in a log file."""

DIRECT_TQDM_MODULES = ("transformers.modeling_gguf_pytorch_utils",)
"""Modules that call ``tqdm.auto.tqdm`` themselves (the assets' GGUF conversion: a line per redraw in a log)."""

__all__ = ["LOG_INTERVAL_S", "bar_options", "is_terminal", "library_bars", "progress_bar"]


def is_terminal(stream: TextIO | None) -> bool:
    """Whether ``stream`` is an open terminal (a closed or odd stream counts as a file)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def bar_options(file: TextIO | None = None) -> dict[str, Any]:
    """tqdm options for a bar writing to ``file`` (None: stderr at the time of the call).

    No options in a terminal (tqdm's live bars). In a log: no line for the first 30 s
    (``delay``), then a line only when 30 s have passed since the last one (``mininterval``,
    with ``miniters=1`` so that tqdm's monitor thread never forces one in between); ``close()``
    writes the last line.
    """
    if is_terminal(sys.stderr if file is None else file):
        return {}
    return {"delay": LOG_INTERVAL_S, "mininterval": LOG_INTERVAL_S, "miniters": 1}


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A ``tqdm.auto.tqdm`` bar with :func:`bar_options` for its stream; ``kwargs`` go to tqdm
    (and win over the options)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **{**bar_options(kwargs.get("file")), **kwargs})


@contextlib.contextmanager
def library_bars() -> Iterator[None]:
    """While active, for a command whose stderr is a log: transformers' bars ("Loading weights",
    "Writing model shards") get :func:`bar_options` through transformers' tqdm hook, and the hub's
    download bars, which take no options from outside, are off. Both come back as they were after."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    def with_options(factory, args, kwargs):  # factory: tqdm, or transformers' no-op bar when disabled
        return factory(*args, **{**bar_options(kwargs.get("file")), **kwargs})

    import importlib

    previous = hf_logging.set_tqdm_hook(with_options)
    hub_bars = not hub_utils.are_progress_bars_disabled()
    if hub_bars:
        hub_utils.disable_progress_bars()
    replaced = []  # bars a library makes straight from tqdm, past transformers' hook (the GGUF conversion)
    for module_name in DIRECT_TQDM_MODULES:
        with contextlib.suppress(ImportError):
            module = importlib.import_module(module_name)
            original = module.tqdm
            module.tqdm = lambda *args, _original=original, **kwargs: with_options(_original, args, kwargs)
            replaced.append((module, original))
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)
        if hub_bars:
            hub_utils.enable_progress_bars()
        for module, original in replaced:
            module.tqdm = original
