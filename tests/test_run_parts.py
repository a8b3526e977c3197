"""The small run-level modules the loop is built from: budgets, method names, metrics,
the held-out lift and the run store."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest

import signal_al.classifier.metrics
import signal_al.core.run_layout
import signal_al.core.run_state
import signal_al.engine.budgets
import signal_al.engine.generator.heldout
import signal_al.engine.methods
from signal_al.core.errors import UserError
from signal_al.core.run_layout import PREVIOUS_STATE_FILE, STATE_FILE
from signal_al.core.run_state import RunState
from signal_al.engine.generator.heldout import paired_gain, shaped_heldout_rewards
from signal_al.engine.store import RunStore


@pytest.mark.parametrize("module", [signal_al.engine.budgets, signal_al.engine.generator.heldout, signal_al.engine.methods,
                                    signal_al.classifier.metrics, signal_al.core.run_layout, signal_al.core.run_state])
def test_doctests(module) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0, module.__name__


def test_paired_gain_pairs_only_samples_both_sides_rewarded() -> None:
    base = np.array([0.10, 0.20, np.nan, 0.40, 0.30, 0.25])
    adapter = np.array([0.15, 0.22, 0.90, np.nan, 0.45, 0.35])
    row = paired_gain(base, adapter)
    both = [0, 1, 4, 5]
    diff = [adapter[i] - base[i] for i in both]  # 0.05, 0.02, 0.15, 0.10
    mean_d = sum(diff) / 4
    sd = math.sqrt(sum((d - mean_d) ** 2 for d in diff) / 3)
    assert row["heldout_paired_n"] == 4 and row["heldout_clusters"] == 4
    assert row["heldout_gain"] == pytest.approx(mean_d)
    assert row["heldout_paired_z"] == pytest.approx(mean_d / (sd / 2.0))
    # means over the same pairs: gain = adapter - base exactly, and the percent agrees in sign with z
    assert row["heldout_reward_base"] == pytest.approx((0.10 + 0.20 + 0.30 + 0.25) / 4)
    assert row["heldout_reward_adapter"] == pytest.approx((0.15 + 0.22 + 0.45 + 0.35) / 4)
    assert row["heldout_gain_pct"] == pytest.approx(100 * mean_d / row["heldout_reward_base"])
    t975 = 3.182446305284263  # Student's t, 3 degrees of freedom (tables)
    assert row["heldout_gain_lo"] == pytest.approx(mean_d - t975 * sd / 2.0)
    assert row["heldout_gain_hi"] == pytest.approx(mean_d + t975 * sd / 2.0)
    assert row["heldout_gain_lo_pct"] == pytest.approx(100 * row["heldout_gain_lo"] / row["heldout_reward_base"])
    assert row["heldout_valid_base"] == pytest.approx(5 / 6) and row["heldout_valid_adapter"] == pytest.approx(5 / 6)
    # one prompt per sample: the clustered z is the ordinary paired z
    assert paired_gain(base, adapter, groups=np.arange(6))["heldout_paired_z"] == pytest.approx(row["heldout_paired_z"])


def test_paired_gain_clusters_the_samples_of_one_prompt() -> None:
    """With equal-sized prompt groups the cluster-robust z is the one-sample t of the prompts' mean gains."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(8), 4)
    base = rng.normal(0.3, 0.1, 32)
    adapter = base + rng.normal(0.05, 0.05, 8)[groups] + rng.normal(0.0, 0.05, 32)  # a prompt-level effect
    row = paired_gain(base, adapter, groups=groups)
    prompt_means = [float(np.mean((adapter - base)[groups == g])) for g in range(8)]
    mean = sum(prompt_means) / 8
    sd = math.sqrt(sum((m - mean) ** 2 for m in prompt_means) / 7)
    assert row["heldout_paired_z"] == pytest.approx(mean / (sd / math.sqrt(8)))
    assert row["heldout_paired_n"] == 32 and row["heldout_clusters"] == 8
    t975 = 2.3646242515927844  # Student's t, 7 degrees of freedom
    assert row["heldout_gain_hi"] - row["heldout_gain_lo"] == pytest.approx(2 * t975 * sd / math.sqrt(8))
    # treating the 32 samples as independent overstates the evidence when the gain varies by prompt
    assert abs(paired_gain(base, adapter)["heldout_paired_z"]) > abs(row["heldout_paired_z"])


def test_paired_gain_interval_covers_the_true_gain_about_95_percent_of_the_time() -> None:
    """Simulated held-out sets with a known gain of 0.05: the clustered t interval has its nominal coverage."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 4)
    covered = 0
    for _ in range(400):
        base = rng.normal(0.3, 0.1, 120)
        trained = base + 0.05 + rng.normal(0, 0.08, 30)[groups] + rng.normal(0, 0.08, 120)
        row = paired_gain(base, trained, groups=groups)
        covered += row["heldout_gain_lo"] <= 0.05 <= row["heldout_gain_hi"]
    assert 0.91 <= covered / 400 <= 0.98


def test_paired_gain_without_valid_text_is_none_not_nan() -> None:
    row = paired_gain(np.array([np.nan, np.nan]), np.array([np.nan, 1.0]))
    assert row["heldout_reward_base"] is None and row["heldout_gain_pct"] is None
    assert row["heldout_paired_z"] is None and row["heldout_paired_n"] == 0 and row["heldout_gain_lo"] is None


def test_heldout_rewards_are_shaped_like_the_training_rewards() -> None:
    scores = np.array([0.2, 0.0, np.nan, 0.5])
    assert shaped_heldout_rewards(scores).tolist()[:2] == [0.2, 0.0]
    shaped = shaped_heldout_rewards(scores, gated_penalty=-0.3)
    assert shaped[1] == -0.3 and math.isnan(shaped[2]) and shaped[3] == 0.5
    assert shaped_heldout_rewards(scores, gated_penalty=-0.3, invalid_penalty=-1.0)[2] == -1.0


def test_run_store_keeps_the_previous_state_and_names_it_when_the_state_is_damaged(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    first, second = RunState(round=0, pool_size=3), RunState(round=1, pool_size=3)
    store.persist(first, ["neg", "pos"])
    store.persist(second, ["neg", "pos"])
    assert json.loads((tmp_path / PREVIOUS_STATE_FILE).read_text())["round"] == 0
    assert store.load_state().round == 1
    (tmp_path / STATE_FILE).write_text('{"round": 1, "pool')  # a torn write by something else
    with pytest.raises(UserError, match=PREVIOUS_STATE_FILE):
        store.load_state()


def test_stale_checkpoint_cleanup_removes_only_classifier_checkpoints(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for name in ("classifier-round-000", "classifier-round-001", "notes"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    store.remove_stale_checkpoints("checkpoints/classifier-round-001")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["classifier-round-001", "notes"]


def _saved_run(tmp_path: Path, *overrides: str) -> Path:
    """A run folder whose config.yaml and state.json exist (a started run), written with ``overrides``."""
    import yaml

    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import apply_overrides, from_dict, to_dict

    data = apply_overrides(to_dict(ExperimentConfig(output_dir=str(tmp_path), name="r")), list(overrides))
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(from_dict(ExperimentConfig, data))))
    (run_dir / STATE_FILE).write_text("{}")
    return run_dir


def test_a_resumed_run_keeps_its_protocol_and_takes_only_the_resume_keys(tmp_path: Path) -> None:
    from signal_al.config import ExperimentConfig
    from signal_al.engine.store import ignored_keys_note, resumed_config

    _saved_run(tmp_path, "reward.k=7", "active_learning.stop_fraction=1.0", "generator.server_url=http://h:8000",
              "device=cuda:1")
    given = ExperimentConfig(output_dir=str(tmp_path), name="r")
    given.reward, given.ppo.cliprange = dataclasses.replace(given.reward, k=3), 0.3
    given.active_learning.stop_fraction, given.generator.server_url = 2.0, "http://h:8003"
    given.experiment.seeds, given.experiment.methods = 9, ["signal"]  # the grid's settings, not the run's
    given.device, given.generator.server_python = "cpu", "/opt/vllm/bin/python"  # where it runs, on this machine
    config, ignored = resumed_config(given)
    assert config.reward.k == 7 and config.ppo.cliprange == ExperimentConfig().ppo.cliprange  # the saved protocol
    assert config.active_learning.stop_fraction == 2.0  # a larger one extends the run
    assert config.generator.server_url == "http://h:8003"  # where the server listens is the caller's
    assert config.experiment.seeds == 9 and config.experiment.methods == ["signal"]
    assert config.device == "cpu" and config.generator.server_python == "/opt/vllm/bin/python"
    assert ignored == ["reward.k", "ppo.cliprange"]
    assert "reward.k, ppo.cliprange differ from it and are ignored" in ignored_keys_note(config.run_dir, ignored, "x")
    assert resumed_config(config)[1] == []  # resumed with its own config: nothing ignored


def test_keys_a_saved_config_predates_are_named(tmp_path: Path) -> None:
    import yaml

    run_dir = _saved_run(tmp_path)
    store = RunStore(run_dir)
    assert store.keys_missing_from_config() == []
    data = yaml.safe_load((run_dir / "config.yaml").read_text())
    del data["active_learning"]["heldout_samples_per_prompt"], data["reward"]["gated_penalty"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data))
    assert store.keys_missing_from_config() == ["reward.gated_penalty", "active_learning.heldout_samples_per_prompt"]
