"""A run folder on disk: its config, its state (the commit point of every round) and the views
people read (labeled.jsonl, metrics.jsonl), plus the latest classifier checkpoint.

``state.json`` is written whole and atomically after every round; the previous good state
is kept as ``state.prev.json`` so a damaged state can be recovered by hand. The JSONL
files are views rewritten from the state, never read back by the loop.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from signal_al.config import ExperimentConfig
from signal_al.core.config_io import differing_keys, flat_dict, load_config, read_yaml, to_dict
from signal_al.core.errors import UserError
from signal_al.core.io_utils import atomic_directory, atomic_write_json, atomic_write_text
from signal_al.core.run_layout import (CHECKPOINT_GLOB, CHECKPOINTS_DIR, CONFIG_FILE, LABELED_FILE, METRICS_FILE,
                                       PREVIOUS_STATE_FILE, STATE_FILE, checkpoint_folder)
from signal_al.core.run_state import RunState, read_state

__all__ = ["RESUME_TAKES", "TIMING_KEYS", "RunStore", "ignored_keys_note", "key_list", "resume_with", "resumed_config",
           "same_run"]

TIMING_KEYS = ("seconds",)  # metric keys that differ between otherwise identical runs


def same_run(a: dict, b: dict) -> bool:
    """Two metrics rows agree apart from wall times."""
    strip = lambda row: {k: v for k, v in row.items() if k not in TIMING_KEYS}  # noqa: E731
    return strip(a) == strip(b)


class RunStore:
    """Reads and writes one run folder; ``keep_all_checkpoints`` keeps every round's classifier."""

    def __init__(self, run_dir: Path, *, keep_all_checkpoints: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.keep_all_checkpoints = keep_all_checkpoints

    # --- config and state ------------------------------------------------------------------

    def check_folder(self) -> None:
        """The run folder is a folder (or can become one): not a file, not under a file."""
        for path in (self.run_dir, *self.run_dir.parents):
            if path.exists():
                if not path.is_dir():
                    what = "the run folder" if path == self.run_dir else f"a parent of the run folder {self.run_dir}"
                    raise UserError(f"{path}: {what} is a file, not a folder; choose another output_dir or name")
                return

    def saved_config(self, overrides: Sequence[str] = (), pairs: Sequence[tuple[str, Any]] = ()) -> ExperimentConfig:
        """The config the run saved (with a command line's ``--set`` ``overrides`` and flag ``pairs`` on top),
        pointed at this folder (the folder may have been moved)."""
        self.check_folder()
        path = self.run_dir / CONFIG_FILE
        if not path.is_file():
            raise UserError(f"{self.run_dir}: not a run directory (no {CONFIG_FILE})")
        config = load_config(ExperimentConfig, path, overrides, pairs)
        if Path(config.output_dir) / config.name != self.run_dir:
            config.output_dir, config.name = str(self.run_dir.parent), self.run_dir.name
        return config

    def keys_missing_from_config(self) -> list[str]:
        """Config keys this version knows that the run's ``config.yaml`` lacks: it predates them, and
        loading gives them today's defaults, which may not be what the run's earlier rounds did."""
        written = flat_dict(read_yaml(self.run_dir / CONFIG_FILE))
        return [key for key in flat_dict(to_dict(ExperimentConfig())) if key not in written]

    def write_config(self, config: ExperimentConfig) -> None:
        import yaml

        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG_FILE, yaml.safe_dump(to_dict(config), sort_keys=False))

    def check_new(self, config: ExperimentConfig) -> None:
        """Refuse to start a new run in a folder that holds anything this run did not write.

        A new run may start in a missing or empty folder, in one that holds only the
        ``config.yaml`` this same config writes (a run stopped before its first state), or in one
        whose run never committed a round (:attr:`RunState.started`: nothing to keep, so a corrected
        command starts it again). Anything else (another run's files, a run whose ``state.json`` is
        gone, a human annotation file) would be overwritten or deleted, so it is a one-line error
        saying what to do.
        """
        self.check_folder()
        if not self.run_dir.is_dir():
            return
        state = self.load_state()
        if state is not None:
            if state.started:
                raise UserError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another "
                                "name")
            return
        entries = sorted(path.name for path in self.run_dir.iterdir())
        if entries == [CONFIG_FILE] and self._same_config(config):
            return
        if not entries:
            return
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        if (self.run_dir / PREVIOUS_STATE_FILE).is_file():
            hint = (f"copy {self.run_dir / PREVIOUS_STATE_FILE} to {self.run_dir / STATE_FILE} to continue from the "
                    "previous round")
        elif CONFIG_FILE in entries or any(name in entries for name in (LABELED_FILE, METRICS_FILE, CHECKPOINTS_DIR)):
            hint = f"restore its {STATE_FILE}, or move the folder away, or choose another name or output_dir"
        else:
            hint = "choose another name or output_dir, or move those files away"
        raise UserError(f"{self.run_dir}: no {STATE_FILE}, but the folder holds files a new run would overwrite "
                        f"({shown}); {hint}")

    def _same_config(self, config: ExperimentConfig) -> bool:
        try:
            saved = to_dict(self.saved_config())
        except UserError:
            return False
        ours = to_dict(config)
        for data in (saved, ours):
            data.pop("name", None)
            data.pop("output_dir", None)
        return saved == ours

    def load_state(self) -> RunState | None:
        """The saved state, None for a new run; a damaged file is a clear error saying how to recover."""
        self.check_folder()
        return read_state(self.run_dir)

    def persist(self, state: RunState, label_names: Sequence[str]) -> None:
        """Commit ``state`` (keeping the previous one), then rewrite the views."""
        current = self.run_dir / STATE_FILE
        if current.is_file():
            atomic_write_text(self.run_dir / PREVIOUS_STATE_FILE, current.read_text())
        atomic_write_json(current, state.to_dict())
        for name, text in self.views(state, label_names).items():
            atomic_write_text(self.run_dir / name, text)

    @staticmethod
    def views(state: RunState, label_names: Sequence[str]) -> dict[str, str]:
        """The files people read, as the state (the commit point) says they are."""
        labeled = [{**item.to_dict(), "label": a.label, "label_name": label_names[a.label], "acquired_round": a.round,
                    "annotator": a.annotator} for a, item in zip(state.annotations, state.labeled_items())]
        return {LABELED_FILE: "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in labeled),
                METRICS_FILE: "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in state.metrics)}

    def rebuild_views(self, state: RunState, label_names: Sequence[str]) -> list[str]:
        """Rewrite the views that differ from ``state`` (truncated, edited, deleted); returns their names.

        ``state.json`` is the commit point: a crash, a full disk or a hand edit may leave
        ``metrics.jsonl`` or ``labeled.jsonl`` short of it, and a resumed run puts them back.
        """
        rebuilt = []
        for name, text in self.views(state, label_names).items():
            path = self.run_dir / name
            try:
                same = path.read_text(encoding="utf-8") == text
            except (OSError, UnicodeDecodeError):
                same = False
            if not same:
                atomic_write_text(path, text)
                rebuilt.append(name)
        return rebuilt

    # --- classifier checkpoints --------------------------------------------------------------

    def save_checkpoint(self, model: Any, round_index: int) -> str:
        """The round's classifier, written atomically; returns its run-relative folder."""
        name = checkpoint_folder(round_index)
        with atomic_directory(self.run_dir / name) as staging:
            model.save_pretrained(staging)
        return name

    def remove_stale_checkpoints(self, keep: str) -> None:
        """Only the checkpoint the next round selects with is needed (unless all are kept)."""
        if self.keep_all_checkpoints:
            return
        for path in (self.run_dir / CHECKPOINTS_DIR).glob(CHECKPOINT_GLOB):
            if path.name != Path(keep).name and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)


#: Keys (and sections) a started run takes from the new command line or grid instead of its saved
#: config: a larger stop_fraction extends it; the rest say where and how the run executes on this
#: machine (device, the generator's servers and their interpreter, HTTP client settings, the grid's
#: own methods, seeds and parallelism), not what it computes.
RESUME_TAKES = ("active_learning.stop_fraction", "device", "generator.server_url", "generator.server_urls",
                "generator.server_python", "generator.server_venv", "generator.parallel_requests",
                "generator.request_retries", "generator.request_timeout", "experiment")


def resumed_config(given: ExperimentConfig) -> tuple[ExperimentConfig, list[str]]:
    """The config a started run in ``given.run_dir`` continues with, and the keys of ``given`` it ignores.

    A run continues with the config it started with (so its rounds follow one protocol), except for
    :data:`RESUME_TAKES`, which come from ``given``; the ignored keys are those where ``given``
    differs from the saved config. A run that never committed a round (:attr:`RunState.started`)
    takes ``given`` whole: its saved config may hold the bad value that stopped it.
    """
    try:
        state = RunStore(given.run_dir).load_state()
    except UserError:  # a damaged state: the run itself says how to recover it
        state = None
    if state is not None and not state.started:  # nothing was computed with the saved config: take the given one
        return given, []
    saved = RunStore(given.run_dir).saved_config()
    ignored = differing_keys(given, saved, ignore=("name", "output_dir", *RESUME_TAKES))
    for key in RESUME_TAKES:
        *sections, name = key.split(".")
        target, source = saved, given
        for section in sections:
            target, source = getattr(target, section), getattr(source, section)
        setattr(target, name, copy.deepcopy(getattr(source, name)))
    return saved, ignored


def resume_with(given: ExperimentConfig, *, source: str, log: Callable[[str], None]) -> ExperimentConfig:
    """The resume protocol, the same for ``run --resume``, ``resume RUN_DIR`` and a grid's cells: the config
    a run in ``given.run_dir`` continues with (:func:`resumed_config`; ``given`` itself when the folder holds
    no state yet), and a note through ``log`` on the keys of ``source`` (the command line, the grid) it ignores."""
    if not (given.run_dir / STATE_FILE).is_file():
        return given
    config, ignored = resumed_config(given)
    if ignored:
        log(f"note: {ignored_keys_note(config.run_dir, ignored, source)}")
    return config


def key_list(keys: Sequence[str], most: int = 6) -> str:
    """Config keys for a one-line message: the first ``most``, then how many more."""
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def ignored_keys_note(run_dir: Path, ignored: Sequence[str], source: str) -> str:
    """What a resume says about the keys of ``source`` (the command line, the grid) it does not take."""
    return (f"continues {run_dir} with its saved config; {source}'s {key_list(ignored)} differ from it and are ignored "
            "(start a new run under another name to change them)")
