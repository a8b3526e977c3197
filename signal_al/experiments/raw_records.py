"""A results folder's raw records: what every run of a report measured, small enough to commit.

``signal-al report RUN_DIR... --export-raw DIR`` copies, for every run folder under the
RUN_DIRs, its ``metrics.jsonl`` and ``config.yaml`` byte for byte and its labeled ids per round
(``labeled_ids.jsonl``, from the run's ``labeled.jsonl``) into ``DIR/raw/<run name>/``, keeps the
report's options in ``DIR/raw/report.json``, and writes DIR's tables and plots from those records
alone. ``signal-al report DIR`` (or any folder above results folders) regenerates them from the
records, with no run folder, checkpoint, adapter or state at hand. The run names are those the
report gives the runs (:func:`signal_al.experiments.report.run_folders`), so a report made from
the run folders and one made from their records are the same files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from signal_al.core.errors import UserError
from signal_al.core.io_utils import atomic_directory, atomic_write_text, json_object_lines
from signal_al.core.run_layout import CONFIG_FILE, LABELED_FILE, METRICS_FILE
from signal_al.experiments.report import run_folders, write_report

__all__ = ["LABELED_IDS_FILE", "OPTIONS_FILE", "RAW_DIR", "RAW_FILES", "export_raw", "is_results_folder",
           "labeled_ids_by_round", "regenerate", "results_folders"]

#: The folder of a results folder that holds the raw records, one sub-folder per run.
RAW_DIR = "raw"
#: The report's options (title, baseline) inside RAW_DIR: what makes a folder a results folder.
OPTIONS_FILE = "report.json"
#: Per run: one line per round, the ids labeled in that round and the labels they got.
LABELED_IDS_FILE = "labeled_ids.jsonl"
#: The files of one run's raw record.
RAW_FILES = (CONFIG_FILE, METRICS_FILE, LABELED_IDS_FILE)


def labeled_ids_by_round(labeled_file: Path) -> list[dict]:
    """``{"round", "ids", "labels"}`` per round, in the order the run labeled them, from a run's
    ``labeled.jsonl``; a row without an id, round or label is an error naming its line."""
    from signal_al.core.errors import DataError

    rounds: dict[int, dict] = {}
    lines = labeled_file.read_text(encoding="utf-8").splitlines()
    for number, row in json_object_lines(lines, labeled_file, problem=lambda what: f"not a labeled.jsonl ({what})"):
        missing = [key for key in ("id", "acquired_round", "label") if key not in row]
        if missing:
            raise DataError(f"{labeled_file}:{number}: not a labeled.jsonl (no {', '.join(missing)})")
        entry = rounds.setdefault(int(row["acquired_round"]), {"round": int(row["acquired_round"]), "ids": [],
                                                               "labels": []})
        entry["ids"].append(row["id"])
        entry["labels"].append(row["label"])
    return [rounds[r] for r in sorted(rounds)]


def _check_destination(roots: Sequence[Path], results_dir: Path) -> None:
    if results_dir.exists() and not results_dir.is_dir():
        raise UserError(f"{results_dir}: is a file, not a folder to export the raw records into")
    target = results_dir.resolve()
    for root in roots:
        if target == root.resolve() or root.resolve() in target.parents:
            raise UserError(f"--export-raw {results_dir}: inside {root}, whose run folders it would then hold; "
                            "choose a folder outside the runs")


def _copy_record(name: str, folder: Path, raw: Path) -> None:
    """One run's raw record into ``raw/<name>/``."""
    for needed in (CONFIG_FILE, LABELED_FILE):
        if not (folder / needed).is_file():
            raise UserError(f"{folder}: no {needed}; a run's raw record needs its {CONFIG_FILE}, {METRICS_FILE} "
                            f"and {LABELED_FILE}")
    target = raw / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / METRICS_FILE, target / METRICS_FILE)
    shutil.copyfile(folder / CONFIG_FILE, target / CONFIG_FILE)
    rows = labeled_ids_by_round(folder / LABELED_FILE)
    atomic_write_text(target / LABELED_IDS_FILE, "".join(json.dumps(row) + "\n" for row in rows))


def _options_text(title: str, baseline: str) -> str:
    return json.dumps({"baseline": baseline, "title": title}, indent=2, ensure_ascii=False) + "\n"


def export_raw(roots: Sequence[Path], results_dir: Path, *, title: str = "", baseline: str = "random"
               ) -> dict[str, Path]:
    """Copy the raw records of every run under ``roots`` into ``results_dir/raw`` and write
    ``results_dir``'s report from them; returns the report's paths.

    The records replace the folder's previous ones whole, and only once the report made from them
    is written (a failing export leaves the previous records and report as they were)."""
    roots = [Path(root) for root in roots]
    results_dir = Path(results_dir)
    _check_destination(roots, results_dir)
    runs = [(name, folder) for name, folder in run_folders(roots[0] if len(roots) == 1 else roots)
            if (folder / METRICS_FILE).stat().st_size > 0]
    if not runs:
        raise UserError(f"{', '.join(str(r) for r in roots)}: no metrics.jsonl found in any run folder")
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_directory(results_dir / RAW_DIR) as staging:
        for name, folder in runs:
            _copy_record(name, folder, staging)
        atomic_write_text(staging / OPTIONS_FILE, _options_text(title, baseline))
        paths = write_report(staging, results_dir, title=title, baseline=baseline)
    return paths


def is_results_folder(folder: Path) -> bool:
    """Whether ``folder`` holds exported raw records (``raw/report.json``)."""
    return (Path(folder) / RAW_DIR / OPTIONS_FILE).is_file()


def results_folders(folder: Path) -> list[Path]:
    """``folder`` itself when it is a results folder, else every results folder below it, sorted."""
    folder = Path(folder)
    if is_results_folder(folder):
        return [folder]
    return sorted(options.parent.parent for options in folder.rglob(f"{RAW_DIR}/{OPTIONS_FILE}"))


def regenerate(results_dir: Path, *, title: str | None = None, baseline: str | None = None) -> dict[str, Path]:
    """Rewrite ``results_dir``'s report from its raw records alone, with the options it was made with
    (``title`` or ``baseline`` given here replace them, and are kept for the next time)."""
    from signal_al.core.errors import DataError

    results_dir = Path(results_dir)
    options_file = results_dir / RAW_DIR / OPTIONS_FILE
    try:
        options = json.loads(options_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{options_file}: not a report options file ({exc})") from None
    if not isinstance(options, dict) or not isinstance(options.get("title", ""), str) \
            or not isinstance(options.get("baseline", "random"), str):
        raise DataError(f"{options_file}: not a report options file (expected title and baseline strings)")
    title = options.get("title", "") if title is None else title
    baseline = options.get("baseline", "random") if baseline is None else baseline
    paths = write_report(results_dir / RAW_DIR, results_dir, title=title, baseline=baseline)
    if options_file.read_text(encoding="utf-8") != _options_text(title, baseline):
        atomic_write_text(options_file, _options_text(title, baseline))
    return paths
