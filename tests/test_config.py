"""Config loading: every user mistake is a one-line ConfigError naming the key or file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from signal_al.config import ExperimentConfig
from signal_al.core.config_io import apply_overrides, describe_fields, from_dict, load_config, parse_override, to_dict
from signal_al.core.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_round_trip_through_dict() -> None:
    config = ExperimentConfig()
    again = from_dict(ExperimentConfig, to_dict(config))
    assert again == config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(ExperimentConfig, path)
    raw = yaml.safe_load(path.read_text())
    assert config.name == raw["name"]
    assert config.data.task == raw["data"]["task"]


def test_paper_configs_cover_three_tasks_at_two_pool_sizes() -> None:
    seen = set()
    for path in CONFIG_DIR.glob("paper_*.yaml"):
        config = load_config(ExperimentConfig, path)
        seen.add((config.data.task, config.data.pool_fraction))
        assert config.generator.model == "Qwen/Qwen2.5-7B-Instruct"
        assert config.classifier.model == "bert-base-uncased"
    assert {(t, f) for t in ("sst2", "ag_news", "qnli") for f in (0.001, 0.01)} <= seen


def test_overrides_are_typed_by_yaml_and_applied() -> None:
    config = load_config(ExperimentConfig, None, ["reward.k=3", "data.task=vader-sources", "ppo.whiten_rewards=true",
                                                  "ppo.lora_target_modules=[q_proj, v_proj]", "ppo.learning_rate=3e-5"])
    assert config.reward.k == 3
    assert config.data.task == "vader-sources"
    assert config.ppo.whiten_rewards is True
    assert config.ppo.lora_target_modules == ["q_proj", "v_proj"]
    assert config.ppo.learning_rate == pytest.approx(3e-5)


def test_override_beats_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("reward:\n  k: 7\n")
    assert load_config(ExperimentConfig, path).reward.k == 7
    assert load_config(ExperimentConfig, path, ["reward.k=2"]).reward.k == 2


def test_int_is_accepted_for_float_but_not_bool_for_int() -> None:
    assert load_config(ExperimentConfig, None, ["ppo.learning_rate=1"]).ppo.learning_rate == 1.0
    with pytest.raises(ConfigError, match=r"reward\.k: expected an integer, got True"):
        load_config(ExperimentConfig, None, ["reward.k=true"])


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["reward.kk=5"], r"^reward\.kk: unknown key \(did you mean 'k'\?\)$"),
        (["rewrd.k=5"], r"^rewrd: unknown key \(did you mean 'reward'\?\)$"),
        (["reward.k=abc"], r"^reward\.k: expected an integer, got 'abc'$"),
        (["reward.kl_direction=sideways"], r"^reward\.kl_direction: must be one of 'forward', 'reverse'"),
        (["data.pool_fraction=1.5"], r"^data\.pool_fraction: must be in \(0, 1\]"),
        (["ppo.lora_target_modules=q_proj"], r"^ppo\.lora_target_modules: expected list of str"),
        (["reward=3"], r"^reward: expected a mapping"),
        (["reward.k"], r"expected KEY=VALUE"),
        (["classifier.epochs=0"], r"^classifier\.epochs: must be positive"),
        (["generator.backend=tgi"], r"^generator\.backend: must be one of"),
        (["generator.response_prefix=New Example:"],
         r"^generator\.response_prefix: expected a string, got \{'New Example': None\} \(YAML reads .* quote"),
    ],
)
def test_bad_values_name_their_key(overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(ExperimentConfig, None, overrides)
    assert "\n" not in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(ExperimentConfig, missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("reward:\n  k: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_config(ExperimentConfig, broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="scalar.yaml: the top level must be a mapping"):
        load_config(ExperimentConfig, scalar)
    typo = tmp_path / "typo.yaml"
    typo.write_text("classifer:\n  model: x\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: classifer: unknown key \(did you mean 'classifier'\?\)"):
        load_config(ExperimentConfig, typo)


def test_quoted_override_keeps_a_colon() -> None:
    config = load_config(ExperimentConfig, None, ['generator.response_prefix="New Example:"'])
    assert config.generator.response_prefix == "New Example:"


def test_parse_override_keeps_strings_with_equals_signs() -> None:
    assert parse_override("data.instruction=Write a=b example") == (["data", "instruction"], "Write a=b example")
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}


def test_every_field_has_help_text() -> None:
    rows = describe_fields(ExperimentConfig)
    assert len(rows) > 40
    missing = [key for key, _, _, help_text in rows if not help_text]
    assert missing == []


def _float_keys() -> list[str]:
    """Every float field of the experiment config (also ``float | None`` and lists of floats)."""
    return [key for key, type_name, _, _ in describe_fields(ExperimentConfig)
            if "float" in type_name and "'" not in type_name]  # not Literal['float32', ...]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400"])
def test_every_float_field_rejects_non_finite_values(value: str) -> None:
    keys = _float_keys()
    assert "ppo.cliprange" in keys and "active_learning.stop_fraction" in keys and len(keys) > 20
    for key, type_name in [(k, t) for k, t, _, _ in describe_fields(ExperimentConfig) if k in keys]:
        text = f"[{value}, {value}]" if type_name.startswith("list") else value
        with pytest.raises(ConfigError, match=rf"^{key}(\[0\])?: must be a finite number"):
            load_config(ExperimentConfig, overrides=[f"{key}={text}"])


def test_every_shipped_yaml_has_no_duplicate_keys_and_a_duplicate_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("reward:\n  k: 3\nppo:\n  seed: 1\nreward:\n  k: 4\n")
    with pytest.raises(ConfigError, match=r"c.yaml:5: invalid YAML: duplicate key 'reward'"):
        load_config(ExperimentConfig, path)
    for shipped in sorted(CONFIG_DIR.glob("*.yaml")):
        load_config(ExperimentConfig, shipped)  # the loader rejects duplicates, so this checks every shipped file


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs", "..\\up", " padded"])
def test_a_run_name_is_one_folder_inside_output_dir(name: str) -> None:
    with pytest.raises(ConfigError, match="^name: must be a folder name"):
        from_dict(ExperimentConfig, {"name": name})


def test_config_io_doctests() -> None:
    import doctest

    import signal_al.core.config_io

    result = doctest.testmod(signal_al.core.config_io)
    assert result.failed == 0 and result.attempted > 0
