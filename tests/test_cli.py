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


# --- flags derived from config fields -----------------------------------------------------------

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_config_flags_become_typed_pairs_applied_after_set() -> None:
    from signal_al.cli.options import config_from_args, config_pairs

    args = build_parser().parse_args(["experiment", "--methods", "random,entropy", "--seeds", "2",
                                      "--output-dir", "out", "--set", "experiment.seeds=9"])
    assert config_pairs(args) == [("experiment.methods", ["random", "entropy"]), ("experiment.seeds", 2),
                                  ("output_dir", "out")]
    config = config_from_args(args)
    assert config.experiment.methods == ["random", "entropy"]
    assert config.experiment.seeds == 2  # the flag wins over --set, as before
    assert config.output_dir == "out"


def test_config_flag_values_are_not_reparsed_as_yaml() -> None:
    from signal_al.cli.options import config_from_args

    args = build_parser().parse_args(["data", "describe", "2024", "--label-names", "yes, no"])
    config = config_from_args(args)
    assert config.data.task == "2024"
    assert config.data.label_names == ["yes", "no"]


def test_absent_config_flags_leave_the_config_alone() -> None:
    from signal_al.cli.options import config_from_args, config_pairs
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config

    args = build_parser().parse_args(["generate", "-c", str(DEMO_CONFIG)])
    assert config_pairs(args) == []
    assert config_from_args(args) == load_config(ExperimentConfig, DEMO_CONFIG)


def test_flag_errors_name_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("experiment:\n  seeds: 2\n")
    assert main(["config", "show", "-c", str(config_file), "--set", "experiment.seeds=0"]) == 2
    assert capsys.readouterr().err == f"signal-al: error: {config_file}: experiment.seeds: must be positive, got 0\n"


def test_negatable_flag_and_override_strings_round_trip() -> None:
    from signal_al.cli.options import config_pairs, override_strings
    from signal_al.core.config_io import parse_override

    args = build_parser().parse_args(["evaluate-generator", "runs/x", "--no-start-server",
                                      "--server-url", "http://h:1"])
    pairs = config_pairs(args)
    assert pairs == [("generator.start_server", False), ("generator.server_url", "http://h:1")]
    pairs += [("data.task", "123"), ("generator.response_prefix", "New Example: "), ("data.label_names", ["yes"]),
              ("data.text_pair_column", None), ("ppo.learning_rate", 2e-5)]
    assert [parse_override(text) for text in override_strings(pairs)] == [(k.split("."), v) for k, v in pairs]


def test_flag_help_comes_from_the_config_field(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.cli.options import config_field

    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    for key in ("generator.backend", "generator.server_url", "generator.model", "data.task"):
        assert config_field(key)[0].metadata["help"] in out
        assert f"the config's {key}" in out
    assert "{vllm-server,vllm,transformers}" in out


def test_train_generator_help_names_the_paths_the_loop_writes(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.core.run_layout import adapter_folder, rl_file

    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["train-generator", "--help"])
    out = capsys.readouterr().out
    assert rl_file(2) in out and adapter_folder(1) in out
    assert "d_rl.jsonl" not in out and "round_1" not in out


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "signal_al.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("signal-al ")


def test_run_resume_continues_with_the_saved_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import signal_al.cli.run as run_command
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import to_dict

    seen: list = []
    monkeypatch.setattr(run_command, "run_or_wait", lambda config, **kwargs: seen.append((config, kwargs)) or 0)
    argv = ["run", "--set", f"output_dir={tmp_path}", "--set", "name=r", "--set", "reward.k=4"]
    assert main([*argv, "--resume"]) == 0  # nothing saved yet: the command line's config
    assert seen[-1][0].reward.k == 4 and seen[-1][1]["resume"] is True
    saved = ExperimentConfig(output_dir=str(tmp_path), name="r")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(to_dict(saved)))
    (tmp_path / "r" / "state.json").write_text("{}")
    assert main([*argv, "--resume"]) == 0
    assert seen[-1][0] == saved  # a started run continues with the config it started with
    assert main(argv) == 0
    assert seen[-1][0].reward.k == 4 and seen[-1][1]["resume"] is False


def test_run_resume_says_which_command_line_keys_it_ignores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    import signal_al.cli.run as run_command
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import to_dict

    monkeypatch.setattr(run_command, "run_or_wait", lambda config, **kwargs: 0)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(to_dict(ExperimentConfig(output_dir=str(tmp_path),
                                                                                          name="r"))))
    (tmp_path / "r" / "state.json").write_text("{}")
    argv = ["run", "--set", f"output_dir={tmp_path}", "--set", "name=r", "--resume"]
    assert main([*argv, "--set", "reward.k=4", "--set", "ppo.cliprange=0.3"]) == 0
    err = capsys.readouterr().err
    assert "note: continues" in err and "reward.k, ppo.cliprange differ from it and are ignored" in err
    assert main(argv) == 0
    assert "ignored" not in capsys.readouterr().err  # the same command line: nothing to say
    # stop_fraction is the one key --resume takes from the command line: it extends a finished run
    ran: list = []
    monkeypatch.setattr(run_command, "run_or_wait", lambda config, **kwargs: ran.append(config) or 0)
    assert main([*argv, "--set", "active_learning.stop_fraction=2.0", "--set", "reward.k=4"]) == 0
    assert ran[-1].active_learning.stop_fraction == 2.0 and ran[-1].reward.k == ExperimentConfig().reward.k
    err = capsys.readouterr().err
    assert "reward.k differ" in err and "stop_fraction" not in err


def test_resume_run_dir_follows_the_resume_protocol_of_run_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`resume RUN_DIR` continues with the saved config, takes from the command line what `run --resume` takes
    (stop fraction, device, servers) and names the keys it ignores; the two commands give the same config."""
    import json

    import yaml

    import signal_al.cli.run as run_command
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import to_dict
    from signal_al.core.run_state import RunState

    ran: list = []
    monkeypatch.setattr(run_command, "run_or_wait", lambda config, **kwargs: ran.append((config, kwargs)) or 0)
    saved = ExperimentConfig(output_dir=str(tmp_path / "elsewhere"), name="old-name")  # the folder was moved since
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(saved)))
    (run_dir / "state.json").write_text(json.dumps(RunState(round=0).to_dict()))
    settings = ["--set", "active_learning.stop_fraction=3.0", "--set", "generator.server_url=http://127.0.0.1:8123",
                "--set", "reward.k=4"]
    assert main(["resume", str(run_dir), "--device", "cpu", *settings]) == 0
    config, kwargs = ran[-1]
    assert kwargs["resume"] is True and config.run_dir == run_dir
    assert (config.device, config.active_learning.stop_fraction, config.generator.server_url) == (
        "cpu", 3.0, "http://127.0.0.1:8123")  # where and how far the run goes: the caller's
    assert config.reward.k == saved.reward.k != 4  # what it computes: the run's own protocol
    err = capsys.readouterr().err
    assert "note: continues" in err and "reward.k differ from it and are ignored" in err
    assert "stop_fraction" not in err and "device" not in err
    assert main(["run", "--resume", "--set", f"output_dir={tmp_path}", "--set", "name=r", "--set", "device=cpu",
                 *settings]) == 0
    assert ran[-1][0] == config  # run --resume: the same config
    capsys.readouterr()
    assert main(["resume", str(run_dir)]) == 0
    assert ran[-1][0] == ExperimentConfig(output_dir=str(tmp_path), name="r")  # nothing given: the saved config
    assert "ignored" not in capsys.readouterr().err
    (run_dir / "state.json").write_text(json.dumps(RunState().to_dict()))  # never committed a round
    assert main(["resume", str(run_dir), *settings]) == 0
    assert ran[-1][0].reward.k == 4  # nothing was computed with the saved config: the caller's is taken whole


def test_an_os_error_on_a_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.cli import error_message

    import json

    (tmp_path / "f").write_text("x")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps({"round": 0, "strategy": "random", "seed": 0,
                                                                "acquired_pct": 10.0, "accuracy": 0.5,
                                                                "macro_f1": 0.5}) + "\n")
    with pytest.raises(SystemExit) as info:  # an output under a file is refused before any work
        main(["report", str(tmp_path), "--out", str(tmp_path / "f" / "sub")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'f'} is a file, so {tmp_path / 'f' / 'sub'} cannot be created" in err
    assert err.startswith("signal-al: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert error_message(PermissionError(13, "Permission denied", "/x")) == "/x: Permission denied"
    # mkdir under a file says "File exists" / "Not a directory" about the wrong path: named as what it is
    for error in (FileExistsError, NotADirectoryError):
        message = error_message(error(17, "File exists", str(tmp_path / "f" / "sub")))
        assert message == f"{tmp_path / 'f' / 'sub'}: {tmp_path / 'f'} is a file, not a folder"
    assert error_message(FileExistsError(17, "File exists", str(tmp_path / "f"))) == (
        f"{tmp_path / 'f'}: is a file, where a folder is needed")
    assert error_message(ConnectionRefusedError(111, "Connection refused")) is None  # no path: a bug's traceback
    assert error_message(ValueError("x")) is None


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--n", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err == ("signal-al: error: generate: argument --n: expected a positive integer, "
                                       "got '0' (see `signal-al generate --help`)\n")


def test_a_heading_in_a_log_stays_narrow_while_tables_print_whole() -> None:
    import io

    from rich.console import Console

    from signal_al.cli.options import heading

    log = Console(file=io.StringIO(), force_terminal=False, width=100_000)  # what console() gives a log
    heading(log, "generator: a check")
    lines = log.file.getvalue().splitlines()
    assert len(lines) == 1 and "generator: a check" in lines[0] and len(lines[0]) == 100
    narrow = Console(file=io.StringIO(), force_terminal=False, width=60)  # a terminal narrower than 100
    heading(narrow, "x")
    assert len(narrow.file.getvalue().splitlines()[0]) == 60
