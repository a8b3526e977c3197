"""Progress bars: live in a terminal; in a log file, at most one line per bar every 30 s and no debris."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import yaml

from signal_al.core.progress import LOG_INTERVAL_S, bar_options, progress_bar

#: One line of a tqdm bar: "desc:  50%|█████     | 10/20 [00:35<00:35, 3.50s/step, loss=0.693]".
BAR_LINE = re.compile(r"^(?P<desc>.+?): +\d+%\|.*?\| (?P<n>\d+)/(?P<total>\d+) \[(?P<elapsed>[\d:]+)<")

#: Runs `signal-al` with tqdm's clock replaced: every reading is 7 s after the previous one, so a
#: run of a few seconds looks like one of many minutes to its progress bars, and each bar line
#: shows (in its elapsed time) when it was written by that clock.
FAKE_CLOCK_MAIN = """
import itertools, sys
import tqdm.std
clock = itertools.count(0, 7)
tqdm.std.time = lambda: next(clock)
from signal_al.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _seconds(elapsed: str) -> int:
    seconds = 0
    for part in elapsed.split(":"):
        seconds = 60 * seconds + int(part)
    return seconds


def _bar_instances(lines: list[str]) -> list[tuple[str, list[tuple[int, int, int]]]]:
    """Each bar's lines as (desc, [(n, total, elapsed s), ...]): a bar is the lines with one desc
    and total whose count and elapsed time never go down (a new bar of the same kind starts over)."""
    bars: list[tuple[str, list[tuple[int, int, int]]]] = []
    last: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    for line in lines:
        match = BAR_LINE.match(line)
        if match is None:
            continue
        desc, n, total, elapsed = (match["desc"], int(match["n"]), int(match["total"]),
                                   _seconds(match["elapsed"]))
        current = last.get((desc, total))
        if current is None or n < current[-1][0] or elapsed < current[-1][2]:
            current = []
            last[(desc, total)] = current
            bars.append((desc, current))
        current.append((n, total, elapsed))
    return bars


def test_a_command_writing_to_a_file_writes_a_bar_line_at_most_every_30_seconds(tmp_path: Path,
                                                                                 tiny_classifier_dir: Path) -> None:
    config = {
        "name": "logged", "output_dir": str(tmp_path / "runs"), "seed": 0, "device": "cpu",
        "data": {"task": "rt-movies", "pool_size": 40, "max_test_size": 40},
        "classifier": {"model": str(tiny_classifier_dir), "max_length": 32, "batch_size": 4, "epochs": 2,
                       "min_steps": 1, "learning_rate": 1e-3},
        "active_learning": {"strategy": "random", "round_fraction": 0.25, "stop_fraction": 1.0},
    }
    path = tmp_path / "logged.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "log"
    with open(log, "w") as handle:  # what `signal-al run -c logged.yaml > log 2>&1` gives
        result = subprocess.run([sys.executable, "-c", FAKE_CLOCK_MAIN, "run", "-c", str(path)],
                                stdout=handle, stderr=subprocess.STDOUT)
    text = log.read_text()
    assert result.returncode == 0, text
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert all(BAR_LINE.match(line) for line in lines if "%|" in line)  # every bar line is parsed
    bars = _bar_instances(lines)
    kinds = {desc for desc, _ in bars}
    # the loop's bar, the classifier's and transformers' "Loading weights" all wrote lines (4 rounds,
    # 6 to 20 steps each: minutes by tqdm's clock)
    assert {"random rounds", "train classifier", "Loading weights"} <= kinds, kinds
    assert len([desc for desc, _ in bars if desc == "train classifier"]) == 4
    for desc, points in bars:
        assert points[0][2] >= LOG_INTERVAL_S, (desc, points)  # nothing in a bar's first 30 s
        for (_, _, before), (n, total, after) in zip(points, points[1:]):
            closing = (n, total, after) == points[-1] and n == total
            assert after - before >= LOG_INTERVAL_S or closing, (desc, points)


def test_a_terminal_gets_tqdms_live_bars() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    from tqdm.auto import tqdm

    screen, log = Terminal(), io.StringIO()
    assert bar_options(screen) == {}
    plain = tqdm(total=3, file=Terminal())
    live = progress_bar(total=3, desc="live", file=screen)
    quiet = progress_bar(total=3, desc="quiet", file=log)
    assert (live.mininterval, live.delay, live.miniters) == (plain.mininterval, plain.delay, plain.miniters)
    plain.close()
    assert (quiet.mininterval, quiet.delay, quiet.miniters) == (LOG_INTERVAL_S, LOG_INTERVAL_S, 1)
    assert "live:   0%" in screen.getvalue() and log.getvalue() == ""  # drawn at once vs. not before 30 s
    for bar in (live, quiet):
        bar.update(3)
        bar.close()
    assert "\r" in screen.getvalue() and "3/3" in screen.getvalue()
    assert log.getvalue() == ""  # a bar that ends within 30 s writes nothing to a log


def test_library_bars_reach_a_bar_a_library_makes_straight_from_tqdm() -> None:
    """The assets' GGUF conversion calls tqdm.auto.tqdm itself (12 lines in 2 s in `make demo > log`)."""
    from transformers import modeling_gguf_pytorch_utils as gguf

    from signal_al.core.progress import library_bars

    original, log = gguf.tqdm, io.StringIO()
    with library_bars():
        bar = gguf.tqdm(range(272), desc="Converting and de-quantizing GGUF tensors...", file=log)
        assert (bar.mininterval, bar.delay, bar.miniters) == (LOG_INTERVAL_S, LOG_INTERVAL_S, 1)
        for _ in bar:
            pass
    assert log.getvalue() == ""  # a bar that ends within 30 s writes nothing
    assert gguf.tqdm is original
