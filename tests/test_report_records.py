"""Raw records: a results folder regenerates from its committed records alone, byte for byte.

The committed folder is ``tests/data/report-grid`` (see its README); every results folder under
``results/`` that holds raw records is checked the same way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from report_grid import TITLE, write_fake_grid
from signal_al.cli import main
from signal_al.experiments.raw_records import LABELED_IDS_FILE, OPTIONS_FILE, RAW_DIR, export_raw, results_folders

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "data" / "report-grid"
PLOT_HASHES = "plots.sha256"
#: Files in a results folder that are not the report's output.
NOT_OUTPUT = {"README.md", ".gitignore", PLOT_HASHES}


def _report(*args: str, logs: Path) -> subprocess.CompletedProcess:
    """``signal-al report ARGS`` in a fresh process, as a user runs it, its output to files in ``logs``."""
    out, err = logs / "report-out.txt", logs / "report-err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        code = subprocess.run([sys.executable, "-m", "signal_al.cli", "report", *args], cwd=REPO,
                              stdout=stdout, stderr=stderr).returncode
    result = subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())
    out.unlink()
    err.unlink()
    return result


def _outputs(folder: Path) -> dict[str, bytes]:
    """The report's files of a results folder (not its raw records), by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name not in NOT_OUTPUT}


def _plot_hashes(folder: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    lines = (folder / PLOT_HASHES).read_text().splitlines()
    version = lines[0].split()[2].rstrip(":")
    return version, {name: (digest, size) for digest, size, name in (line.split() for line in lines[1:])}


def _png_size(data: bytes) -> str:
    return f"{int.from_bytes(data[16:20], 'big')}x{int.from_bytes(data[20:24], 'big')}"


def _png_matplotlib(data: bytes) -> str:
    """The matplotlib version a PNG names in its Software text chunk."""
    start = data.index(b"Matplotlib version") + len(b"Matplotlib version")
    return data[start:data.index(b",", start)].decode()


def _check_regenerates(committed: Path, tmp_path: Path) -> None:
    """Copy a committed results folder without its report, regenerate it, compare byte for byte."""
    import matplotlib

    copy = tmp_path / committed.name
    shutil.copytree(committed / RAW_DIR, copy / RAW_DIR)
    result = _report(str(copy), logs=tmp_path)
    assert result.returncode == 0, result.stderr
    made = _outputs(copy)
    expected = {name: data for name, data in _outputs(committed).items() if not name.endswith(".png")}
    texts = {name: data for name, data in made.items() if not name.endswith(".png")}
    assert sorted(texts) == sorted(expected)
    for name in expected:
        assert texts[name] == expected[name], f"{committed / name} does not regenerate byte for byte"
    plots = {name: data for name, data in made.items() if name.endswith(".png")}
    if (committed / PLOT_HASHES).is_file():
        version, hashes = _plot_hashes(committed)
        assert sorted(plots) == sorted(hashes)
        for name, data in plots.items():
            digest, size = hashes[name]
            assert _png_size(data) == size
            if version == matplotlib.__version__:  # the same renderer draws the same pixels
                assert hashlib.sha256(data).hexdigest() == digest, f"{name} differs from {committed / PLOT_HASHES}"
    else:  # a real results folder commits its plots
        expected = {name: data for name, data in _outputs(committed).items() if name.endswith(".png")}
        assert sorted(plots) == sorted(expected)
        for name, data in plots.items():
            assert _png_size(data) == _png_size(expected[name])
            if _png_matplotlib(expected[name]) == matplotlib.__version__:
                assert data == expected[name], f"{committed / name} does not regenerate byte for byte"
    assert "markdown: " in result.stdout and "## Primary endpoints" in result.stdout


def test_the_committed_grid_and_every_results_folder_regenerate_byte_for_byte_from_their_raw_records(
        tmp_path: Path) -> None:
    """The test fixture, and every folder of results/ that holds raw records (one command
    regenerates them all: ``signal-al report results``)."""
    for index, folder in enumerate([FIXTURE, *results_folders(REPO / "results")]):
        (tmp_path / str(index)).mkdir()
        _check_regenerates(folder, tmp_path / str(index))


def test_export_copies_exactly_the_raw_records_and_the_fixture_is_what_it_writes(tmp_path: Path) -> None:
    runs = write_fake_grid(tmp_path / "runs")
    for name in ("state.json", "candidates.jsonl"):  # what a run folder also holds stays out of the record
        (runs / "signal-seed0" / name).write_text("{}\n")
    (runs / "signal-seed0" / "checkpoints" / "classifier-round-019").mkdir(parents=True)
    result = _report(str(runs), "--export-raw", str(tmp_path / "results"), "--title", TITLE, logs=tmp_path)
    assert result.returncode == 0, result.stderr
    raw = tmp_path / "results" / RAW_DIR
    for run in sorted(p for p in runs.iterdir()):
        assert sorted(p.name for p in (raw / run.name).iterdir()) == ["config.yaml", LABELED_IDS_FILE, "metrics.jsonl"]
        assert (raw / run.name / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()
        assert (raw / run.name / "config.yaml").read_bytes() == (run / "config.yaml").read_bytes()
        by_round: dict[int, list] = {}
        for line in (run / "labeled.jsonl").read_text().splitlines():
            row = json.loads(line)
            by_round.setdefault(row["acquired_round"], []).append((row["id"], row["label"]))
        rounds = [json.loads(line) for line in (raw / run.name / LABELED_IDS_FILE).read_text().splitlines()]
        assert [(r["round"], list(zip(r["ids"], r["labels"]))) for r in rounds] == sorted(by_round.items())
    assert json.loads((raw / OPTIONS_FILE).read_text()) == {"baseline": "random", "title": TITLE}
    # the committed fixture is exactly this export: records and tables
    committed = {p.relative_to(FIXTURE / RAW_DIR): p.read_bytes() for p in (FIXTURE / RAW_DIR).rglob("*") if p.is_file()}
    assert committed == {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    made = _outputs(tmp_path / "results")
    assert {n: d for n, d in made.items() if not n.endswith(".png")} == {
        n: d for n, d in _outputs(FIXTURE).items() if not n.endswith(".png")}
    # and a report made from the run folders themselves is the same report
    direct = _report(str(runs), "--out", str(tmp_path / "direct"), "--title", TITLE, logs=tmp_path)
    assert direct.returncode == 0, direct.stderr
    assert _outputs(tmp_path / "direct") == made


def test_several_roots_export_under_their_labels_and_regenerate_the_same(tmp_path: Path) -> None:
    grid = write_fake_grid(tmp_path / "grid")
    pool, ours = tmp_path / "a" / "grid", tmp_path / "b" / "grid"  # same folder name: told apart by the parent
    for run in grid.iterdir():
        shutil.move(str(run), str((ours if run.name.startswith("signal") else pool) / run.name))
    paths = export_raw([pool, ours], tmp_path / "results", title="two roots")
    names = json.loads((tmp_path / "results" / "runs.json").read_text())
    assert "a/grid/random-seed0" in names and "b/grid/signal-seed2" in names
    assert (tmp_path / "results" / RAW_DIR / "b" / "grid" / "signal-seed2" / "metrics.jsonl").is_file()
    before = _outputs(tmp_path / "results")
    assert main(["report", str(tmp_path)]) == 0  # a folder above a results folder regenerates it in place
    assert _outputs(tmp_path / "results") == before and paths["markdown"].is_file()


def test_regenerating_with_new_options_keeps_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIXTURE / RAW_DIR, tmp_path / "r" / RAW_DIR)
    assert main(["report", str(tmp_path / "r"), "--baseline", "signal-frozen"]) == 0
    assert "## accuracy gain over signal-frozen" in (tmp_path / "r" / "results.md").read_text()
    assert json.loads((tmp_path / "r" / RAW_DIR / OPTIONS_FILE).read_text()) == {"baseline": "signal-frozen",
                                                                                 "title": TITLE}
    assert main(["report", str(tmp_path / "r")]) == 0
    assert "## accuracy gain over signal-frozen" in (tmp_path / "r" / "results.md").read_text()


def test_a_failing_export_leaves_the_previous_records_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import signal_al.experiments.report as report

    results = tmp_path / "results"
    shutil.copytree(FIXTURE / RAW_DIR, results / RAW_DIR)
    (results / "results.md").write_text("previous\n")
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    runs = write_fake_grid(tmp_path / "runs")
    shutil.rmtree(runs / "badge-seed1")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(results / "accuracy.png"))

    monkeypatch.setattr(report, "plot_curves", broken)
    assert main(["report", str(runs), "--export-raw", str(results)]) == 2
    assert capsys.readouterr().err == f"signal-al: error: {results / 'accuracy.png'}: No space left on device\n"
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_bad_uses_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = write_fake_grid(tmp_path / "runs")
    results = tmp_path / "results"
    shutil.copytree(FIXTURE / RAW_DIR, results / RAW_DIR)
    cases = [
        (["report", str(runs), "--export-raw", str(tmp_path / "x"), "--out", str(tmp_path / "y")], "drop --out"),
        (["report", str(results), "--out", str(tmp_path / "y")], "regenerated in place from its raw records"),
        (["report", str(results), str(runs)], f"{runs}: no results folder (raw/report.json) here"),
        (["report", str(runs), "--export-raw", str(runs / "results")], "inside"),
        (["report", str(runs), "--export-raw", str(runs)], "inside"),
        (["report", str(runs), str(runs), "--out", str(tmp_path / "y")], "is listed twice"),
    ]
    (tmp_path / "file").write_text("x")
    cases.append((["report", str(runs), "--export-raw", str(tmp_path / "file")], "is a file"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("signal-al: error: ") and message in err and len(err.splitlines()) == 1, (argv, err)
    (runs / "random-seed0" / "labeled.jsonl").unlink()
    assert main(["report", str(runs), "--export-raw", str(tmp_path / "x")]) == 2
    assert f"{runs / 'random-seed0'}: no labeled.jsonl" in capsys.readouterr().err
    _write(runs / "random-seed0" / "labeled.jsonl", '{"id": "a", "label": 0}\n')
    assert main(["report", str(runs), "--export-raw", str(tmp_path / "x")]) == 2
    assert "labeled.jsonl:1: not a labeled.jsonl (no acquired_round)" in capsys.readouterr().err
    assert not (tmp_path / "x" / RAW_DIR).exists()
    _write(results / RAW_DIR / OPTIONS_FILE, "[1, 2]\n")
    assert main(["report", str(results)]) == 2
    assert f"{results / RAW_DIR / OPTIONS_FILE}: not a report options file" in capsys.readouterr().err


if __name__ == "__main__":  # python tests/test_report_records.py --write-plot-hashes: after a deliberate change
    import matplotlib

    assert sys.argv[1:] == ["--write-plot-hashes"], "usage: python tests/test_report_records.py --write-plot-hashes"
    lines = [f"# matplotlib {matplotlib.__version__}: the plots of this folder, regenerated by signal-al report "
             "(sha256, width x height, file)"]
    for plot in sorted(FIXTURE.glob("*.png")):
        data = plot.read_bytes()
        lines.append(f"{hashlib.sha256(data).hexdigest()} {_png_size(data)} {plot.name}")
    (FIXTURE / PLOT_HASHES).write_text("\n".join(lines) + "\n")
