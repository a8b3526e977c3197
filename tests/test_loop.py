"""The active-learning loop: budget accounting, exact resume after kill -9, human annotation, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from signal_al.config import ExperimentConfig
from signal_al.core.config_io import load_config
from signal_al.core.errors import UserError
from signal_al.core.run_layout import STATE_FILE
from signal_al.data import load_task, real_pool
from signal_al.engine.budgets import round_targets, total_budget
from signal_al.engine.loop import ActiveLearningRun
from signal_al.engine.store import same_run
from signal_al.experiments.report import write_report

SCRIPT = str(Path(sys.executable).with_name("signal-al"))


def _config_file(tmp_path: Path, model_dir: Path, name: str, **sections: dict) -> Path:
    data = {
        "name": name, "output_dir": str(tmp_path / "runs"), "seed": 3, "device": "cpu",
        "data": {"task": "rt-movies", "pool_size": 40, "max_test_size": 60},
        "classifier": {"model": str(model_dir), "max_length": 32, "batch_size": 8, "epochs": 1, "min_steps": 3,
                       "eval_batch_size": 64, "learning_rate": 1e-3},
        "active_learning": {"strategy": "entropy", "round_fraction": 0.1, "stop_fraction": 1.0},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _final_state(run_dir: Path) -> dict:
    return json.loads((run_dir / STATE_FILE).read_text())


def test_budgets() -> None:
    assert total_budget(85, 2.0, pool_based=True) == 85
    assert total_budget(85, 2.0, pool_based=False) == 170


@pytest.mark.parametrize("pool_size", [5, 17, 85, 100, 333])
@pytest.mark.parametrize("stop", [1.0, 2.0])
def test_round_targets_stay_on_the_exact_grid(pool_size: int, stop: float) -> None:
    total = total_budget(pool_size, stop, pool_based=stop <= 1.0)
    targets = round_targets(pool_size, 0.1, total)
    assert targets[-1] == total and all(b > a for a, b in zip(targets, targets[1:]))
    for index, target in enumerate(targets[:-1]):
        exact = max((index + 1) * 0.1 * pool_size, index + 1)
        assert abs(target - exact) <= 0.5 + 1e-9  # never drifts: each target is the grid point rounded


def test_round_targets_with_an_explicit_seed_set() -> None:
    assert round_targets(100, 0.1, 50, seed_size=4) == [4, 14, 24, 34, 44, 50]


@pytest.mark.parametrize("strategy", ["random", "badge"])
def test_every_round_acquires_its_budget_and_no_item_twice(tmp_path: Path, tiny_classifier_dir: Path,
                                                           strategy: str) -> None:
    path = _config_file(tmp_path, tiny_classifier_dir, strategy, active_learning={"strategy": strategy})
    config = load_config(ExperimentConfig, path)
    state = ActiveLearningRun(config, progress=False, log=lambda _: None).run()
    ids = [a.id for a in state.annotations]
    assert len(ids) == len(set(ids)) == 40
    assert [row["n_labeled"] for row in state.metrics] == list(range(4, 41, 4))
    assert [row["acquired_pct"] for row in state.metrics] == [float(p) for p in range(10, 101, 10)]
    assert state.finished
    # labels are the real hidden labels of the pool, revealed only for selected items
    data = load_task(config.data)
    pool = real_pool(data, config.data, seed=config.seed)
    truth = dict(zip(pool.ids, pool.labels.tolist()))
    assert all(a.label == truth[a.id] and a.annotator == "ground_truth" for a in state.annotations)
    # persisted views agree with the state
    labeled = [json.loads(line) for line in (config.run_dir / "labeled.jsonl").read_text().splitlines()]
    assert [row["id"] for row in labeled] == ids
    metrics = [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 10 and 0.0 <= metrics[-1]["accuracy"] <= 1.0
    assert len(list((config.run_dir / "checkpoints").iterdir())) == 1
    # the class-count std is that of the acquired labels
    counts = np.bincount([a.label for a in state.annotations], minlength=2)
    assert metrics[-1]["class_count_std"] == pytest.approx(np.std(counts.astype(np.float64)))


def test_a_finished_run_resumed_with_a_larger_stop_fraction_continues_like_one_long_run(
        tmp_path: Path, tiny_classifier_dir: Path) -> None:
    short = load_config(ExperimentConfig, _config_file(tmp_path, tiny_classifier_dir, "grow",
                                                       active_learning={"stop_fraction": 0.3}))
    assert ActiveLearningRun(short, progress=False, log=lambda _: None).run().finished
    longer = load_config(ExperimentConfig, _config_file(tmp_path, tiny_classifier_dir, "grow",
                                                        active_learning={"stop_fraction": 0.6}))
    saved = yaml.safe_load((short.run_dir / "config.yaml").read_text())
    del saved["active_learning"]["heldout_samples_per_prompt"]  # as written by a version before that key
    (short.run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    lines: list[str] = []
    grown = ActiveLearningRun(longer, progress=False, log=lines.append).run(resume=True)
    assert any("config.yaml predates active_learning.heldout_samples_per_prompt" in line for line in lines)
    assert any("extending the finished run from 12 to 24 labels" in line for line in lines)
    assert grown.finished and [row["n_labeled"] for row in grown.metrics] == [4, 8, 12, 16, 20, 24]
    assert yaml.safe_load((longer.run_dir / "config.yaml").read_text())["active_learning"]["stop_fraction"] == 0.6
    reference = load_config(ExperimentConfig, _config_file(tmp_path, tiny_classifier_dir, "straight",
                                                           active_learning={"stop_fraction": 0.6}))
    straight = ActiveLearningRun(reference, progress=False, log=lambda _: None).run()
    assert [a.id for a in grown.annotations] == [a.id for a in straight.annotations]
    assert all(same_run(a, b) for a, b in zip(grown.metrics, straight.metrics))


def test_existing_run_needs_resume(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    path = _config_file(tmp_path, tiny_classifier_dir, "twice", data={"pool_size": 10})
    ActiveLearningRun(load_config(ExperimentConfig, path), progress=False, log=lambda _: None).run()
    result = subprocess.run([SCRIPT, "run", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "already holds a run; pass --resume" in result.stderr


@pytest.mark.slow
def test_kill_9_and_resume_ends_like_an_uninterrupted_run(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    reference = _config_file(tmp_path, tiny_classifier_dir, "reference", active_learning={"strategy": "badge"})
    killed = _config_file(tmp_path, tiny_classifier_dir, "killed", active_learning={"strategy": "badge"})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([SCRIPT, "run", "-c", str(reference)], check=True, capture_output=True, env=env)

    run_dir = tmp_path / "runs" / "killed"
    kills = 0
    for target_round in (2, 5):  # kill twice, at different points
        process = subprocess.Popen([SCRIPT, "run", "-c", str(killed), *(["--resume"] if kills else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            state_file = run_dir / STATE_FILE
            if state_file.is_file():
                try:
                    if json.loads(state_file.read_text())["round"] >= target_round:
                        break
                except json.JSONDecodeError:
                    pytest.fail("state.json was observed half-written")
            time.sleep(0.05)
        time.sleep(0.3)  # land somewhere inside the next round
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        assert not _final_state(run_dir)["finished"]
    subprocess.run([SCRIPT, "run", "-c", str(killed), "--resume"], check=True, capture_output=True, env=env)

    expected, got = _final_state(tmp_path / "runs" / "reference"), _final_state(run_dir)
    assert got["finished"] and expected["finished"]
    assert got["annotations"] == expected["annotations"]
    assert len(got["metrics"]) == len(expected["metrics"]) == 10
    assert all(same_run(a, b) for a, b in zip(got["metrics"], expected["metrics"]))


def test_human_annotation_round_trip_from_the_cli(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    path = _config_file(tmp_path, tiny_classifier_dir, "human", data={"pool_size": 20},
                        active_learning={"annotator": "human", "stop_fraction": 0.2})
    config = load_config(ExperimentConfig, path)
    run_dir = config.run_dir
    names = ("negative", "positive")

    first = subprocess.run([SCRIPT, "run", "-c", str(path)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    batch_file = run_dir / "annotation" / "round_000.csv"
    assert f"fill the 'label' column of {batch_file}" in first.stdout
    batch = pd.read_csv(batch_file, comment="#", keep_default_na=False)
    assert len(batch) == 2 and set(batch["label"]) == {""}

    batch.loc[0, "label"] = "neutral"
    batch.loc[1, "label"] = "positive"
    batch.to_csv(batch_file, index=False)
    bad = subprocess.run([SCRIPT, "resume", str(run_dir)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (f"signal-al: error: {batch_file}: line 2: label 'neutral' is not one of "
                                  "negative, positive")

    batch.loc[0, "label"] = "negative"
    batch.to_csv(batch_file, index=False)
    second = subprocess.run([SCRIPT, "resume", str(run_dir)], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert (run_dir / "annotation" / "round_001.csv").is_file()  # next batch waits for a person
    state = _final_state(run_dir)
    assert [(a["id"], a["label"], a["annotator"]) for a in state["annotations"]] == [
        (batch.loc[0, "id"], names.index("negative"), "human"), (batch.loc[1, "id"], 1, "human")]
    assert state["pending"]["round"] == 1 and len(state["metrics"]) == 1

    second_batch = pd.read_csv(run_dir / "annotation" / "round_001.csv", comment="#", keep_default_na=False)
    second_batch["label"] = ["1"] * len(second_batch)  # integer ids are accepted too
    second_batch.to_csv(run_dir / "annotation" / "round_001.csv", index=False)
    third = subprocess.run([SCRIPT, "resume", str(run_dir)], capture_output=True, text=True)
    assert third.returncode == 0, third.stderr
    state = _final_state(run_dir)
    assert state["finished"] and len(state["annotations"]) == 4


def test_report_matches_an_independent_aggregation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected = {}
    for method in ("random", "entropy"):
        for seed in range(3):
            rows = []
            for r, pct in enumerate((10.0, 20.0, 30.0)):
                acc, f1 = float(rng.random()), float(rng.random())
                expected.setdefault((method, pct), []).append((acc, f1))
                rows.append({"round": r, "strategy": method, "seed": seed, "acquired_pct": pct,
                             "accuracy": acc, "macro_f1": f1})
            run = tmp_path / f"{method}-seed{seed}"
            run.mkdir()
            (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    paths = write_report(tmp_path)
    table = pd.read_csv(paths["csv"])
    for (method, pct), values in expected.items():
        row = table[(table.strategy == method) & (table.acquired_pct == pct)].iloc[0]
        accs = np.array([v[0] for v in values], dtype=np.float64)
        assert row["accuracy_mean"] == pytest.approx(accs.mean())
        assert row["accuracy_std"] == pytest.approx(accs.std(ddof=1))
        assert row["accuracy_count"] == 3
    markdown = paths["markdown"].read_text()
    mean = np.mean([v[0] for v in expected[("entropy", 20.0)]])
    assert f"{100 * mean:.1f} ±" in markdown
    # paired gain over random: the mean over seeds of the per-seed differences
    from signal_al.experiments.report import collect_metrics, paired_gain

    frame = collect_metrics(tmp_path)
    for drop_seed in (None, 2):  # a strategy missing a seed is compared with random's same seeds
        subset = frame if drop_seed is None else frame[~((frame.strategy == "entropy") & (frame.seed == drop_seed))]
        gains = paired_gain(subset)
        seeds = [s for s in range(3) if s != drop_seed]
        diff = [expected[("entropy", 30.0)][s][0] - expected[("random", 30.0)][s][0] for s in seeds]
        row = gains[(gains.strategy == "entropy") & (gains.acquired_pct == 30.0)].iloc[0]
        assert row["gain"] == pytest.approx(np.mean(diff)) and row["seeds"] == len(seeds)
        assert row["gain_std"] == pytest.approx(np.std(diff, ddof=1))
    # any strategy can be the baseline: random against entropy is the same gain with the sign flipped
    flipped = paired_gain(frame, baseline="entropy")
    row = flipped[(flipped.strategy == "random") & (flipped.acquired_pct == 30.0)].iloc[0]
    assert row["gain"] == pytest.approx(np.mean([expected[("random", 30.0)][s][0] - expected[("entropy", 30.0)][s][0]
                                                 for s in range(3)]))
    other = write_report(tmp_path, tmp_path / "vs-entropy", baseline="entropy")
    assert "gain over entropy" in other["markdown"].read_text()
    with pytest.raises(UserError, match="--baseline nope: no such strategy among the runs"):
        write_report(tmp_path, tmp_path / "vs-nope", baseline="nope")
    assert "gain over random" in markdown and f"{100 * np.mean([expected[('entropy', 20.0)][s][0] - expected[('random', 20.0)][s][0] for s in range(3)]):+.1f}" in markdown
    assert paths["accuracy"].stat().st_size > 10_000


def test_plot_colours_and_the_pool_reference() -> None:
    import doctest

    import pandas as pd

    import signal_al.experiments.endpoints as endpoints
    import signal_al.experiments.report as report

    assert doctest.testmod(report).failed == 0 and doctest.testmod(endpoints).failed == 0
    methods = ["random", "badge", "cal", "coreset", "entropy", "signal", "signal-frozen"]
    colours = report.strategy_colours(methods)
    assert len(set(colours.values())) == len(methods)  # every line its own colour
    assert colours["random"] == report.strategy_colours(["random", "signal"])["random"]  # stable across plots
    assert {colours["signal"], colours["signal-frozen"]} <= set(report.SIGNAL_COLOURS)
    # the reference: the best point of any pool-based mean curve at any %, never a SIGnAL row;
    # with it, the mean of the pool-based methods' means at 100 %
    frame = pd.DataFrame({"strategy": ["random", "random", "cal", "cal", "cal", "cal", "signal", "signal"],
                          "seed": [0, 1, 0, 1, 0, 1, 0, 0], "acquired_pct": [100.0, 100.0, 100.0, 100.0, 90.0, 90.0,
                                                                            100.0, 150.0],
                          "accuracy": [0.70, 0.72, 0.68, 0.66, 0.75, 0.73, 0.80, 0.82]})
    reference = endpoints.pool_reference(frame)
    assert (reference.strategy, reference.pct) == ("cal", 90.0)
    assert reference.value == pytest.approx((0.75 + 0.73) / 2) and reference.per_seed == {0: 0.75, 1: 0.73}
    assert reference.mean_at_full == pytest.approx(((0.70 + 0.72) / 2 + (0.68 + 0.66) / 2) / 2)
    assert reference.methods_at_full == 2
    assert endpoints.pool_reference(frame[frame["strategy"] == "signal"]) is None


def test_the_report_measures_signal_past_the_pool_against_the_pool_based_reference(tmp_path: Path) -> None:
    """SIGnAL at 100-200 % minus the pool-based reference (the best point of any pool-based mean
    curve) in the same seed, against a by-hand float64 computation; a seed only one side ran is left out."""
    rng = np.random.default_rng(7)
    acc: dict[tuple[str, int, float], float] = {}
    for method, stop in (("random", 100), ("coreset", 100), ("signal", 200), ("signal-frozen", 200)):
        for seed in range(3 if method != "signal-frozen" else 2):
            pcts = [float(p) for p in range(10, stop + 1, 10)]
            rows = []
            for r, pct in enumerate(pcts):
                acc[method, seed, pct] = float(rng.uniform(0.5, 0.9))
                rows.append({"round": r, "strategy": method, "seed": seed, "acquired_pct": pct,
                             "accuracy": acc[method, seed, pct], "macro_f1": 0.5})
            run = tmp_path / f"{method}-seed{seed}"
            run.mkdir()
            (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    from signal_al.experiments.endpoints import pool_reference
    from signal_al.experiments.report import beyond_pool_gain, collect_metrics

    pool_means = {(m, float(p)): np.mean([acc[m, s, float(p)] for s in range(3)], dtype=np.float64)
                  for m in ("random", "coreset") for p in range(10, 101, 10)}
    best, best_pct = max(pool_means, key=pool_means.get)
    frame = collect_metrics(tmp_path)
    reference = pool_reference(frame)
    assert (reference.strategy, reference.pct) == (best, best_pct)
    gains = beyond_pool_gain(frame, reference)
    for method, seeds in (("signal", range(3)), ("signal-frozen", range(2))):
        for pct in (100.0, 150.0, 200.0):
            diff = np.array([acc[method, s, pct] - acc[best, s, best_pct] for s in seeds], dtype=np.float64)
            row = gains[(gains.strategy == method) & (gains.acquired_pct == pct)].iloc[0]
            assert row["gain"] == pytest.approx(diff.mean()) and row["gain_std"] == pytest.approx(diff.std(ddof=1))
            assert row["seeds"] == len(diff)
    assert set(gains.acquired_pct) == {float(p) for p in range(100, 201, 10)}  # nothing before the pool ran out
    paths = write_report(tmp_path)
    markdown = paths["markdown"].read_text()
    png_width = lambda path: int.from_bytes(path.read_bytes()[16:20], "big")  # noqa: E731 (the IHDR width)
    assert png_width(paths["accuracy"]) == 3 * 7.5 * 120  # curves, gain over random, gain past the pool
    pool_only = write_report([tmp_path / f"random-seed{s}" for s in range(3)] + [tmp_path / "coreset-seed0"],
                             out_dir=tmp_path / "pool-report")
    assert png_width(pool_only["accuracy"]) == 2 * 7.5 * 120  # nothing past the pool: no third panel
    diff = np.array([acc["signal", s, 200.0] - acc[best, s, best_pct] for s in range(3)], dtype=np.float64)
    section = markdown.split("## accuracy past the pool at each step")[1]
    assert f"({best} at {best_pct:g} %)" in section
    signal_row = next(line for line in section.splitlines() if line.startswith("| signal |"))
    assert signal_row.endswith(f"| {100 * diff.mean():+.1f} ± {100 * diff.std(ddof=1):.1f} (3) |")  # at 200 %
    assert f"**{100 * pool_means[best, best_pct]:.1f}** ({best} at {best_pct:g} %, 3 seeds)" in markdown
    at_full = np.mean([pool_means["random", 100.0], pool_means["coreset", 100.0]])
    assert f"the pool-based mean at 100 % is **{100 * at_full:.1f}**" in markdown
    assert pool_reference(collect_metrics(tmp_path / "signal-seed0")) is None  # no pool-based run: no reference


def test_the_run_prints_the_pool_based_reference_and_the_gain_past_it() -> None:
    import pandas as pd

    from signal_al.experiments.run_summary import ceiling_line

    frame = pd.DataFrame({"strategy": ["random", "random", "signal", "signal", "signal"], "seed": [0] * 5,
                          "acquired_pct": [50.0, 100.0, 50.0, 100.0, 125.0],
                          "accuracy": [0.72, 0.70, 0.62, 0.69, 0.735]})
    assert ceiling_line(frame, "signal") == (
        "pool-based reference (best point of a pool-based curve): random at 50 %: 72.0; pool-based mean at 100 %: "
        "70.0; signal at 125 %: 73.5 (+1.5 points)")
    assert ceiling_line(frame[frame["acquired_pct"] < 100], "signal") == (
        "pool-based reference (best point of a pool-based curve): random at 50 %: 72.0")
    assert ceiling_line(frame[frame["strategy"] == "signal"], "signal") is None


def test_report_combines_grids_and_aggregates_generator_statistics(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A pool-based grid and a SIGnAL grid (separate folders, same run names) in one report, and
    the per-round generator table against a by-hand float64 aggregation."""
    rng = np.random.default_rng(1)
    pool_root, signal_root, out = tmp_path / "pool", tmp_path / "signal", tmp_path / "out"
    expected: dict[tuple[int, str], list[float]] = {}
    for seed in range(2):
        for root, method in ((pool_root, "random"), (signal_root, "signal")):
            rows, labeled, synthetic = [], 0, 0
            for r in range(4):
                acquired = int(rng.integers(3, 6))
                picked_synthetic = 0 if r == 0 or method == "random" else int(rng.integers(0, acquired + 1))
                labeled, synthetic = labeled + acquired, synthetic + picked_synthetic
                row = {"round": r, "strategy": method, "seed": seed, "acquired_pct": 10.0 * (r + 1),
                       "target_pct": 10.0 * (r + 1), "accuracy": float(rng.random()),
                       "macro_f1": float(rng.random()), "n_labeled": labeled, "n_synthetic": synthetic}
                if method == "signal" and r >= 1:
                    row.update(reward_mean=float(rng.random()), kl=float(rng.random()),
                               distinct_2=float(rng.random()), dropped_fraction=float(rng.random()),
                               n_synthetic_selected=picked_synthetic)
                    expected.setdefault((r, "share"), []).append(picked_synthetic / acquired)
                    expected.setdefault((r, "labeled_share"), []).append(synthetic / labeled)
                    expected.setdefault((r, "reward"), []).append(row["reward_mean"])
                rows.append(row)
            run = root / f"{method}-seed{seed}" if method == "signal" else root / "seed-grid" / f"x-seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    paths = write_report([pool_root, signal_root], out)
    table = pd.read_csv(paths["csv"])
    assert set(table.strategy) == {"random", "signal"} and set(table.accuracy_count) == {2}
    generator = pd.read_csv(paths["generator_stats"].with_suffix(".csv"))
    assert set(generator.strategy) == {"signal"} and sorted(generator.acquired_pct) == [20.0, 30.0, 40.0]
    for r in (1, 2, 3):
        row = generator[generator.acquired_pct == 10.0 * (r + 1)].iloc[0]
        assert row["synthetic_selected_share"] == pytest.approx(np.mean(expected[(r, "share")]))
        assert row["synthetic_labeled_share"] == pytest.approx(np.mean(expected[(r, "labeled_share")]))
        assert row["reward_mean"] == pytest.approx(np.mean(expected[(r, "reward")]))
        assert row["seeds"] == 2
    assert "### signal" in (out / "generator_stats.md").read_text()
    assert paths["generator_stats"].stat().st_size > 10_000
    runs = json.loads((out / "runs.json").read_text())
    assert "pool/seed-grid/x-seed0" in runs and "signal/signal-seed1" in runs

    from signal_al.cli import main

    assert main(["report", str(pool_root), str(signal_root)]) == 2
    assert "pass --out" in capsys.readouterr().err


def test_experiment_grid_in_parallel_processes_matches_the_sequential_grid(tmp_path: Path,
                                                                           tiny_classifier_dir: Path) -> None:
    import torch

    from signal_al.core.io_utils import read_jsonl
    from signal_al.experiments.grid import run_experiment

    def grid(output: str, parallel_runs: int) -> Path:
        path = _config_file(tmp_path, tiny_classifier_dir, "grid",
                            data={"pool_size": 20}, active_learning={"stop_fraction": 0.5},
                            experiment={"methods": ["random", "entropy"], "seeds": 2, "parallel_runs": parallel_runs})
        config = load_config(ExperimentConfig, path, [f"output_dir={tmp_path / output}"])
        run_experiment(config, progress=False, log=lambda _: None)
        return config.run_dir

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the parallel workers get cpu_count // 2 = 1 thread each on CI's 2 cores
    try:
        sequential = grid("sequential", 1)
    finally:
        torch.set_num_threads(threads)
    parallel = grid("parallel", 2)
    for cell in ["random-seed0", "entropy-seed0", "random-seed1", "entropy-seed1"]:
        ours, reference = read_jsonl(parallel / cell / "metrics.jsonl"), read_jsonl(sequential / cell / "metrics.jsonl")
        assert [row["target_pct"] for row in ours] == [10.0, 20.0, 30.0, 40.0, 50.0]
        if (os.cpu_count() or 1) // 2 == 1:
            assert all(same_run(a, b) for a, b in zip(ours, reference, strict=True)), cell
    seed_sets = {cell: json.loads((parallel / cell / STATE_FILE).read_text())["annotations"][:2]
                 for cell in ["random-seed0", "entropy-seed0"]}
    assert seed_sets["random-seed0"] == seed_sets["entropy-seed0"]  # one seed, one seed set for every method
    assert (parallel / "results.md").is_file() and (parallel / "accuracy.png").is_file()


def test_a_grid_run_in_parts_by_first_seed_writes_the_whole_grids_cells(tmp_path: Path,
                                                                         tiny_classifier_dir: Path) -> None:
    from signal_al.core.io_utils import read_jsonl
    from signal_al.experiments.grid import run_experiment

    def grid(output: str, first_seed: int, seeds: int) -> Path:
        path = _config_file(tmp_path, tiny_classifier_dir, "grid", data={"pool_size": 20},
                            active_learning={"stop_fraction": 0.3},
                            experiment={"methods": ["random"], "seeds": seeds, "first_seed": first_seed})
        config = load_config(ExperimentConfig, path, [f"output_dir={tmp_path / output}"])
        run_experiment(config, progress=False, log=lambda _: None)
        return config.run_dir

    whole = grid("whole", 0, 3)
    part = grid("parts", 2, 1)
    assert sorted(p.name for p in part.iterdir() if p.is_dir()) == ["random-seed2"]
    assert grid("parts", 0, 2) == part  # the second part lands beside the first
    cells = ["random-seed0", "random-seed1", "random-seed2"]
    assert sorted(p.name for p in part.iterdir() if p.is_dir()) == cells
    for cell in cells:
        ours, reference = read_jsonl(part / cell / "metrics.jsonl"), read_jsonl(whole / cell / "metrics.jsonl")
        assert [row["seed"] for row in ours] == [int(cell[-1])] * 3
        assert all(same_run(a, b) for a, b in zip(ours, reference, strict=True)), cell
        assert _final_state(part / cell)["annotations"] == _final_state(whole / cell)["annotations"], cell
    assert (part / "results.csv").read_text() == (whole / "results.csv").read_text()  # one report over the parts


def test_run_with_a_same_seed_baseline_prints_the_comparison_and_writes_the_plot(tmp_path: Path,
                                                                                   tiny_classifier_dir: Path) -> None:
    from signal_al.core.io_utils import read_jsonl

    path = _config_file(tmp_path, tiny_classifier_dir, "main", data={"pool_size": 20},
                        active_learning={"stop_fraction": 0.5, "baselines": ["random"]})
    result = subprocess.run([SCRIPT, "run", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "main"
    ours, baseline = (read_jsonl(d / "metrics.jsonl") for d in (run_dir, run_dir / "baselines" / "random"))
    assert [r["strategy"] for r in ours + baseline] == ["entropy"] * 5 + ["random"] * 5
    main_state, random_state = (json.loads((d / STATE_FILE).read_text()) for d in (run_dir, run_dir / "baselines/random"))
    assert main_state["annotations"][:2] == random_state["annotations"][:2]  # same seed set
    assert (run_dir / "accuracy.png").is_file() and "plot:" in result.stdout
    comparison = result.stdout[result.stdout.index("entropy vs the same seed"):]
    for a, b in zip(ours, baseline):
        line = next(line for line in comparison.splitlines() if f"{a['target_pct']:g} %" in line)
        assert f"{100 * a['accuracy']:.1f}" in line and f"{100 * b['accuracy']:.1f}" in line
        assert f"{100 * (a['accuracy'] - b['accuracy']):+.1f}" in line
    # the closing summary in plain words restates the run's own first and last accuracy
    summary = result.stdout[result.stdout.index("In plain words:"):]
    assert (f"test accuracy went from {100 * ours[0]['accuracy']:.1f} % with {ours[0]['n_labeled']} labels to "
            f"{100 * ours[-1]['accuracy']:.1f} % with {ours[-1]['n_labeled']}") in summary
    assert "One seed and 60 test rows" in summary
    again = subprocess.run([SCRIPT, "run", "-c", str(path), "--resume"], capture_output=True, text=True)
    assert again.returncode == 0 and read_jsonl(run_dir / "baselines/random/metrics.jsonl") == baseline


def test_grid_settings_cover_every_task_and_pool_fraction(tmp_path: Path) -> None:
    from signal_al.experiments.grid import run_config, settings

    base = load_config(ExperimentConfig, None, [f"output_dir={tmp_path}", "name=exp", "data.pool_size=50",
                                                "experiment.tasks=[rt-movies,vader-sources]",
                                                "experiment.pool_fractions=[0.01,0.05]"])
    groups = settings(base)
    assert [(g.data.task, g.data.pool_fraction, g.data.pool_size, g.name) for g in groups] == [
        ("rt-movies", 0.01, None, "rt-movies-pool1pct"), ("rt-movies", 0.05, None, "rt-movies-pool5pct"),
        ("vader-sources", 0.01, None, "vader-sources-pool1pct"), ("vader-sources", 0.05, None, "vader-sources-pool5pct")]
    assert all(g.run_dir.parent == tmp_path / "exp" for g in groups)
    frozen = run_config(groups[0], "signal-frozen", 2)
    assert (frozen.active_learning.strategy, frozen.active_learning.generator_update, frozen.seed) == ("signal", "frozen", 2)
    assert frozen.run_dir == tmp_path / "exp" / "rt-movies-pool1pct" / "signal-frozen-seed2"
    only_tasks = settings(load_config(ExperimentConfig, None, ["data.pool_size=50", "experiment.tasks=[vader-sources]"]))
    assert [(g.data.pool_size, g.name) for g in only_tasks] == [(50, "vader-sources-pool50")]


def test_method_names_label_ablations_schedules_and_variants(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    from signal_al.core.errors import ConfigError
    from signal_al.engine.methods import method_name

    def name(**al: object) -> str:
        return method_name(load_config(ExperimentConfig, _config_file(tmp_path, tiny_classifier_dir, "n",
                                                                      active_learning=al)))

    assert name(strategy="badge") == "badge"
    assert name(strategy="signal", generator_update="frozen") == "signal-frozen"
    assert name(strategy="signal", synthetic_share=[0.2, 1.0]) == "signal-share0.2-1"
    assert name(strategy="signal", variant="clean") == "signal+clean"
    assert name(strategy="entropy", variant="lr2") == "entropy+lr2"
    with pytest.raises(ConfigError, match="active_learning.variant"):
        name(strategy="signal", variant="a/b")


def test_a_grid_cell_resumes_with_its_saved_config_on_its_slots_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import signal_al.experiments.grid as experiment
    from signal_al.core.config_io import to_dict

    started = load_config(ExperimentConfig, None, [f"output_dir={tmp_path}", "name=cell", "reward.k=7",
                                                   "generator.server_url=http://127.0.0.1:8001"])
    started.run_dir.mkdir(parents=True)
    (started.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(started)))
    (started.run_dir / STATE_FILE).write_text("{}")
    ran: list = []

    class Recorder:
        def __init__(self, config, **kwargs) -> None:
            self.config = config

        def run(self, *, resume: bool) -> None:
            ran.append((self.config, resume))

    monkeypatch.setattr(experiment, "ActiveLearningRun", Recorder)
    monkeypatch.setattr(experiment, "_SLOT", 2)
    cell = load_config(ExperimentConfig, None, [f"output_dir={tmp_path}", "name=cell", "reward.k=3",
                                                "active_learning.stop_fraction=2.0"])
    experiment.run_cell(cell, None, False, threads=1)
    config, resume = ran[-1]
    assert resume and config.reward.k == 7  # the protocol the cell started with
    assert config.active_learning.stop_fraction == 2.0  # the grid's stop extends it
    assert config.generator.server_url == "http://127.0.0.1:8002"  # the grid's url, shifted once to slot 2
    out = capsys.readouterr().out
    assert "[cell] note: continues" in out and "the grid's reward.k differ from it and are ignored" in out
    fresh = load_config(ExperimentConfig, None, [f"output_dir={tmp_path}", "name=new", "reward.k=3"])
    experiment.run_cell(fresh, None, False, threads=1)
    assert ran[-1][0].reward.k == 3 and ran[-1][1] is False  # a new cell runs the grid's config


def test_a_grid_refuses_a_started_cell_with_an_unreadable_config_before_any_run(tmp_path: Path) -> None:
    from signal_al.core.errors import ConfigError
    from signal_al.experiments.grid import check_run_folders

    cell = load_config(ExperimentConfig, None, [f"output_dir={tmp_path}", "name=cell"])
    cell.run_dir.mkdir(parents=True)
    from signal_al.core.run_state import RunState

    (cell.run_dir / STATE_FILE).write_text(json.dumps(RunState(pool_size=1).to_dict()))
    (cell.run_dir / "config.yaml").write_text("reward: {k: many}\n")
    with pytest.raises(ConfigError, match=r"cell/config.yaml.*reward.k"):
        check_run_folders([cell])


def test_parallel_generator_slots_get_their_own_port_and_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             tiny_classifier_dir: Path) -> None:
    from signal_al.core.errors import ConfigError
    from signal_al.experiments.grid import gpu_of_slot, on_slot, visible_gpus

    base = load_config(ExperimentConfig, None, ["generator.server_url=http://10.0.0.2:8100", "generator.start_server=true",
                                                "experiment.parallel_generator_runs=3"])
    assert [on_slot(base, slot).generator.server_url for slot in range(3)] == [
        "http://10.0.0.2:8100", "http://10.0.0.2:8101", "http://10.0.0.2:8102"]
    assert base.generator.server_url == "http://10.0.0.2:8100"  # the cell's own config is not changed
    assert on_slot(load_config(ExperimentConfig, None, ["generator.server_url=http://localhost"]), 2
                   ).generator.server_url == "http://localhost:8002"
    assert [gpu_of_slot(slot, ["4", "6"]) for slot in range(5)] == ["4", "6", "4", "6", "4"]
    assert gpu_of_slot(1, []) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with pytest.raises(ConfigError, match="experiment.parallel_generator_runs.*start_server"):
        load_config(ExperimentConfig, None, ["experiment.parallel_generator_runs=2"])
    with pytest.raises(ConfigError, match="experiment.parallel_generator_runs: must be positive"):
        load_config(ExperimentConfig, None, ["experiment.parallel_generator_runs=0"])
    load_config(ExperimentConfig, None, ["experiment.parallel_generator_runs=2", "generator.backend=transformers"])


def test_a_damaged_state_names_the_previous_one_which_continues_the_run(tmp_path: Path) -> None:
    from signal_al.core.errors import UserError
    from signal_al.core.run_layout import PREVIOUS_STATE_FILE
    from signal_al.core.run_state import Annotation, Item, RunState
    from signal_al.engine.store import RunStore

    store = RunStore(tmp_path / "run")
    items = [Item(id=f"i{n}", text=f"text {n}") for n in range(3)]
    first = RunState(round=0, pool_size=3, items=items, annotations=[Annotation("i0", 1, 0, "ground_truth")])
    second = RunState(round=1, pool_size=3, items=items,
                      annotations=[*first.annotations, Annotation("i1", 0, 1, "ground_truth")])
    store.persist(first, ["neg", "pos"])
    store.persist(second, ["neg", "pos"])
    state_file = tmp_path / "run" / STATE_FILE
    state_file.write_text(state_file.read_text()[:40])  # a disk that filled up mid-write, or a bad copy
    with pytest.raises(UserError) as info:
        store.load_state()
    message = str(info.value)
    assert "\n" not in message and "not a readable run state (JSONDecodeError" in message
    assert f"the previous round's state is {tmp_path / 'run' / PREVIOUS_STATE_FILE}: copy it over {state_file}" in message
    state_file.write_text((tmp_path / "run" / PREVIOUS_STATE_FILE).read_text())
    assert store.load_state().to_dict() == first.to_dict()


def test_resume_without_state_keeps_a_filled_human_annotation_file(tmp_path: Path, tiny_classifier_dir: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The data-loss report of issue 17: pause a human-annotator run, fill the CSV, lose state.json, resume."""
    from signal_al.cli import main

    path = _config_file(tmp_path, tiny_classifier_dir, "human", data={"pool_size": 20},
                        active_learning={"annotator": "human", "strategy": "random"})
    assert main(["run", "-c", str(path)]) == 0  # round 0 waits for a person
    run_dir = load_config(ExperimentConfig, path).run_dir
    batch_file = run_dir / "annotation" / "round_000.csv"
    batch = pd.read_csv(batch_file, comment="#", keep_default_na=False)
    batch["label"] = "positive"
    batch.to_csv(batch_file, index=False)
    (run_dir / STATE_FILE).unlink()
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    capsys.readouterr()
    for argv in (["resume", str(run_dir)], ["run", "-c", str(path), "--resume"], ["run", "-c", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"signal-al: error: {run_dir}: no {STATE_FILE}, but the folder holds files") and \
            f"copy {run_dir / 'state.prev.json'} to {run_dir / STATE_FILE}" in err and len(err.splitlines()) == 1
        assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_the_results_table_gives_mean_and_std_and_no_std_for_a_single_seed() -> None:
    from signal_al.experiments.report import markdown_table, summary_table

    frame = pd.DataFrame({"strategy": ["random", "random", "signal"], "seed": [0, 1, 0],
                          "acquired_pct": [100.0, 100.0, 100.0], "accuracy": [0.70, 0.75, 0.8125],
                          "macro_f1": [0.5, 0.5, 0.5]})
    row = {line.split(" | ")[0].strip("| "): line for line in markdown_table(summary_table(frame)).splitlines()}
    std = 100 * np.std([0.70, 0.75], ddof=1, dtype=np.float64)
    assert row["random"].endswith(f"| 72.5 ± {std:.1f} (2) |")
    assert row["signal"].endswith("| 81.2 (1) |")  # one seed: its std is undefined, not 0.0
