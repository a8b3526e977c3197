"""The `signal-al` command: --help everywhere, one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from signal_al.cli import build_parser, main


def _all_command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += _all_command_paths(child, prefix + (name,))
    return paths


COMMANDS = _all_command_paths(build_parser())


def test_expected_commands_exist() -> None:
    assert {("assets", "fetch"), ("assets", "list"), ("assets", "verify"), ("data", "describe"),
            ("config", "show"), ("config", "keys")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "signal-al")
def test_help_for_every_command(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: signal-al")
    assert len(out.splitlines()) >= 3


def test_config_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "reward.kk=1"]) == 2
    err = capsys.readouterr().err
    assert err == "signal-al: error: reward.kk: unknown key (did you mean 'k'?)\n"


def test_missing_label_column_via_the_console_script(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("text,stars\ngreat,5\nbad,1\n")
    script = Path(sys.executable).with_name("signal-al")
    result = subprocess.run([str(script), "data", "describe", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"signal-al: error: {path}: no label column 'label' (columns: text, stars)\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_config_show_prints_resolved_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    config_file = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    assert main(["config", "show", "-c", str(config_file), "--set", "reward.k=4"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["reward"]["k"] == 4
    assert shown["data"]["task"] == "rt-movies"


def test_data_describe_real_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "describe", "vader-sources", "--rows", "2"]) == 0
    out = capsys.readouterr().out
    for label in ("movie", "tweet", "news", "product"):
        assert label in out
    assert "real pool" in out


def test_describe_local_file_with_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\ngreat,5\nbad,1\nfine,5\nugh,1\nok,5\n")
    assert main(["data", "describe", str(path), "--text-column", "review", "--label-column", "stars",
                 "--set", "data.pool_size=2"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "great" in out
