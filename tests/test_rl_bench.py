"""The RL bench (scripts/bench_rl.py, signal-al check-rl) on tiny random models with the transformers backend:
what it trains on, what it records, and that its held-out statistics agree with a recomputation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from signal_al.experiments.rl_bench import RLBench, RLBenchConfig


def _bench(tmp_path: Path, classifier: Path, generator: Path, reward: str, **overrides) -> tuple[RLBench, dict]:
    settings = dict(reward=reward, seed=1, labeled=12, iterations=2, prompts=4, samples=2, heldout=8,
                    heldout_per_prompt=2, generator=str(generator), classifier=str(classifier), backend="transformers",
                    start_server=False, max_new_tokens=12, learning_rate=1e-3, min_words=1, classifier_steps=4)
    config = RLBenchConfig(**{**settings, **overrides})
    bench = RLBench(config, tmp_path / reward, log=lambda _: None)
    return bench, bench.run()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_length_control_records_every_iteration_and_a_paired_heldout_gain(
        tmp_path: Path, tiny_classifier_dir: Path, tiny_generator_dir: Path) -> None:
    bench, last = _bench(tmp_path, tiny_classifier_dir, tiny_generator_dir, "length", eval_every=1)
    out = tmp_path / "length"
    assert json.loads((out / "config.json").read_text())["reward"] == "length"
    rows = _lines(out / "metrics.jsonl")
    assert [(r["kind"], r["iteration"]) for r in rows] == [("iteration", 1), ("eval", 1), ("iteration", 2),
                                                           ("eval", 2)]
    iterations = [r for r in rows if r["kind"] == "iteration"]
    # one optimizer for the bench: its step count keeps growing
    first, second = iterations
    assert first["optimizer_steps_total"] == first["optimizer_steps"] > 0
    assert second["optimizer_steps_total"] == first["optimizer_steps"] + second["optimizer_steps"]
    assert all(r["served_logprob_mae"] < 1e-3 for r in iterations)  # the backend's log-probs = the trainer's
    samples = _lines(out / "samples.jsonl")
    for s in samples:  # the reward is -words/10 of the kept text, NaN (null) for a dropped one
        if s["drop_reason"] is None:
            assert s["reward"] == pytest.approx(-0.1 * len(s["text"].split()))
        else:
            assert s["reward"] is None
    base = [s for s in samples if s["phase"] == "heldout-base"]
    trained = [s for s in samples if s["phase"] == "heldout-2"]
    assert len(base) == len(trained) == 8
    pairs = [(b["reward"], t["reward"]) for b, t in zip(base, trained)
             if b["reward"] is not None and t["reward"] is not None]
    assert last["paired_n"] == len(pairs)
    if pairs:
        assert last["gain"] == pytest.approx(np.mean([t - b for b, t in pairs]))
        assert last["reward_base"] == pytest.approx(np.mean([b for b, _ in pairs]))
    kept_base = [len(s["text"].split()) for s in base if s["drop_reason"] is None]
    assert last["words_base"] == pytest.approx(np.mean(kept_base) if kept_base else None)
    assert last["kl"] >= 0.0 and "signal_gain" in last and "paper_gain" in last
    line = bench.summary_line(last, wall_s=1.0)
    assert line.startswith("rl: reward=length backend=transformers iterations=2 ")
    for key in ("gain_lo=", "gain_hi=", "paired_z=", "kl=", "words_base=", "length_matched_gain=", "offdist_trained=",
                "served_mae=", "wall_s="):
        assert key in line
    assert len(list((out / "adapters").iterdir())) == 1  # only the latest adapter stays


def test_shuffled_null_trains_on_the_same_rewards_in_another_order(
        tmp_path: Path, tiny_classifier_dir: Path, tiny_generator_dir: Path) -> None:
    bench, last = _bench(tmp_path, tiny_classifier_dir, tiny_generator_dir, "shuffled", prompts=8,
                         relevance="none")
    samples = _lines(tmp_path / "shuffled" / "samples.jsonl")
    for it in (1, 2):
        rows = [s for s in samples if s["phase"] == f"train-{it}" and s["drop_reason"] is None]
        recomputed = bench.scorer.score([s["text"] for s in rows])  # the real SIGnAL reward of each text
        trained_on = np.array([s["reward"] for s in rows])
        assert sorted(trained_on) == pytest.approx(sorted(recomputed), rel=1e-6, abs=1e-9)
        if len(set(np.round(recomputed, 9))) > 2:
            assert not np.allclose(trained_on, recomputed)  # permuted, not the real assignment
    # the held-out comparison uses the real (unshuffled) SIGnAL reward
    base = [s for s in samples if s["phase"] == "heldout-base" and s["drop_reason"] is None]
    assert [s["reward"] for s in base] == pytest.approx(list(bench.scorer.score([s["text"] for s in base])), rel=1e-6)


def test_transfer_reproduces_the_heldout_evaluation_and_compares_on_fresh_training_pool_prompts(
        tmp_path: Path, tiny_classifier_dir: Path, tiny_generator_dir: Path) -> None:
    bench, last = _bench(tmp_path, tiny_classifier_dir, tiny_generator_dir, "length")
    adapter = tmp_path / "length" / "adapters" / "iter-002"
    again = RLBench(bench.config, tmp_path / "transfer", log=lambda _: None)
    prompts: list[list[str]] = []  # the prompts of each generation call, in order
    generate = again._heldout

    def spy(generator, adapter, pool=None, **kwargs):
        candidates = generate(generator, adapter, pool, **kwargs)
        prompts.append([c.prompt for c in candidates])
        return candidates

    again._heldout = spy
    rows = again.transfer(adapter, ("train", "heldout", "train-draws"))
    assert [r["pool"] for r in rows] == ["train", "heldout", "train-draws"]
    run_samples = _lines(tmp_path / "length" / "samples.jsonl")
    samples = _lines(tmp_path / "transfer" / "samples.jsonl")

    def texts(records: list[dict], phase: str) -> list[str]:
        return [s["text"] for s in records if s["phase"] == phase]

    # the held-out pool at the run's seeds: the run's own base and adapter samples, so the same gain
    assert texts(samples, "heldout-base") == texts(run_samples, "heldout-base")
    assert texts(samples, "heldout-adapter") == texts(run_samples, "heldout-2")
    heldout = rows[1]
    assert heldout["gain"] == pytest.approx(last["gain"]) and heldout["paired_n"] == last["paired_n"]
    # the training pool: both sides answer the same prompts, built from the training pool's texts only
    train_base, train_adapter, heldout_base, _ = prompts
    assert train_base == train_adapter and train_base != heldout_base
    only_heldout = set(again.heldout_pool.texts) - set(again.train_pool.texts)
    for prompt in train_base:
        assert any(text in prompt for text in again.train_pool.texts)
        assert not any(text in prompt for text in only_heldout)
    # its gain is the mean paired difference of the recorded rewards
    base = [s["reward"] for s in samples if s["phase"] == "train-base"]
    trained = [s["reward"] for s in samples if s["phase"] == "train-adapter"]
    pairs = [(b, t) for b, t in zip(base, trained) if b is not None and t is not None]
    assert rows[0]["paired_n"] == len(pairs)
    if pairs:
        assert rows[0]["gain"] == pytest.approx(np.mean([t - b for b, t in pairs]))
    assert [json.loads(line)["pool"] for line in (tmp_path / "transfer" / "transfer.jsonl").read_text().splitlines()] \
        == ["train", "heldout", "train-draws"]
    # training-style draws: ceil(heldout / (prompts x samples)) calls of the training size, one cluster per prompt
    config = bench.config
    calls = -(-config.heldout // (config.prompts * config.samples))
    draws = [s for s in samples if s["phase"] == "train-draws-adapter"]
    assert len(draws) == calls * config.prompts * config.samples
    assert sorted({s["group"] for s in draws}) == list(range(calls * config.prompts))
    assert [s["group"] for s in draws] == [s["group"] for s in samples if s["phase"] == "train-draws-base"]
    # a fresh held-out evaluation of any size: held-out-pool prompts at a seed the run never used
    prompts.clear()
    fresh = RLBench(bench.config, tmp_path / "fresh", log=lambda _: None)
    fresh._heldout = again._heldout
    (row,) = fresh.transfer(adapter, ("heldout-fresh",), samples=3 * config.heldout)
    fresh_samples = _lines(tmp_path / "fresh" / "samples.jsonl")
    fresh_base, fresh_adapter = prompts
    assert fresh_base == fresh_adapter and len(fresh_base) == 3 * config.heldout
    assert texts(fresh_samples, "heldout-fresh-base") != texts(run_samples, "heldout-base")[:len(fresh_base)]
    for prompt in fresh_base:
        assert any(text in prompt for text in fresh.heldout_pool.texts)
        assert not any(text in prompt for text in set(fresh.train_pool.texts) - set(fresh.heldout_pool.texts))
    base = [s["reward"] for s in fresh_samples if s["phase"] == "heldout-fresh-base"]
    trained = [s["reward"] for s in fresh_samples if s["phase"] == "heldout-fresh-adapter"]
    pairs = [(b, t) for b, t in zip(base, trained) if b is not None and t is not None]
    assert row["pool"] == "heldout-fresh" and row["paired_n"] == len(pairs)
    if pairs:
        assert row["gain"] == pytest.approx(np.mean([t - b for b, t in pairs]))
    with pytest.raises(ValueError, match="samples"):
        again.transfer(adapter, ("heldout-fresh",), samples=0)
    with pytest.raises(ValueError, match="pools"):
        again.transfer(adapter, ("test",))
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        again.transfer(tmp_path)
    with pytest.raises(FileExistsError, match="holds a bench run"):  # never over the run's own samples
        RLBench(bench.config, tmp_path / "length", log=lambda _: None).transfer(adapter)


def test_bench_config_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(ValueError, match="reward: one of signal, classprob, length, shuffled"):
        RLBenchConfig(reward="accuracy")
    with pytest.raises(ValueError, match="iterations: must be positive"):
        RLBenchConfig(iterations=0)
    with pytest.raises(ValueError, match="needs measure_signal"):
        RLBenchConfig(reward="shuffled", measure_signal=False)
    assert RLBenchConfig(iterations=40, eval_every=10).evaluation_points() == [10, 20, 30, 40]
    assert RLBenchConfig(iterations=6).evaluation_points() == [6]
    assert RLBenchConfig(iterations=7, eval_every=3).evaluation_points() == [3, 6, 7]


def _record(root: Path, name: str, lr: float, seed: int, gain: float, z: float) -> None:
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    config = {"reward": "classprob", "seed": seed, "iterations": 8, "prompts": 16, "samples": 4, "heldout": 400,
              "heldout_per_prompt": 4, "learning_rate": lr, "kl_coef": 0.1, "advantage": "rloo", "epochs": 1,
              "minibatches": 2, "backend": "vllm-server", "lora_layers": None, "reset_optimizer": False}
    (folder / "config.json").write_text(json.dumps(config))
    rows = [{"kind": "iteration", "iteration": 8, "served_logprob_mae": 0.04},
            {"kind": "eval", "iteration": 8, "gain": gain, "paired_z": z, "reward_base": 0.5}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "summary.json").write_text(json.dumps({"wall_s": 800}))


def test_rl_bench_report_takes_means_only_over_seeds_of_one_setting(tmp_path: Path) -> None:
    """Two seeds at lr 1e-3 and one at 2e-3: two tables, and the mean and t interval of the pair alone."""
    import subprocess
    import sys

    _record(tmp_path, "a-s0", 1e-3, 0, 0.10, 4.0)
    _record(tmp_path, "a-s1", 1e-3, 1, 0.20, 5.0)
    _record(tmp_path, "b-s0", 2e-3, 0, 0.90, 9.0)
    script = Path(__file__).resolve().parents[1] / "scripts" / "rl_bench_report.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    text = (tmp_path / "results.md").read_text()
    assert text.count("## `--reward classprob`") == 2
    # two seeds: mean 0.15, half-width t(0.975, 1 df) = 12.7062 x sd 0.0707107 / sqrt 2 = 0.63531
    assert "Mean gain over 2 seeds: +0.1500, 95 % t interval over seeds [-0.4853, +0.7853]." in text
    assert "| a-s0 | 8 |" in text and "| missed |" in text  # gain 0.10 < 0.15
    assert "| a-s1 | 8 |" in text and "| met |" in text
    assert "over 3 seeds" not in text


def test_the_committed_rl_bench_page_regenerates_from_its_raw_records(tmp_path: Path) -> None:
    """results/rl-bench/results.md is what rl_bench_report.py writes from the committed runs/, byte for byte."""
    import shutil
    import subprocess
    import sys

    committed = Path(__file__).resolve().parents[1] / "results" / "rl-bench"
    shutil.copytree(committed / "runs", tmp_path / "runs")
    if (committed / "confirm").is_dir():
        shutil.copytree(committed / "confirm", tmp_path / "confirm")
    script = committed.parents[1] / "scripts" / "rl_bench_report.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "results.md").read_text() == (committed / "results.md").read_text()


def _curve_record(root: Path, name: str, reward: str, seed: int, gains: dict[int, float]) -> None:
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    config = {"reward": reward, "seed": seed, "iterations": 20, "prompts": 16, "samples": 4, "heldout": 400,
              "heldout_per_prompt": 4, "learning_rate": 1e-3, "kl_coef": 0.1, "advantage": "rloo", "epochs": 1,
              "minibatches": 2, "backend": "vllm-server", "lora_layers": None, "reset_optimizer": False}
    (folder / "config.json").write_text(json.dumps(config))
    rows = [{"kind": "eval", "iteration": it, "gain": g, "gain_pct": 100 * g / 0.2, "gain_lo_pct": 100 * g / 0.2 - 5,
             "gain_hi_pct": 100 * g / 0.2 + 5, "paired_z": g * 30, "reward_base": 0.2, "kl": it / 10,
             "words_base": 16.0, "words_trained": 16.0 + it / 10, "length_matched_gain": g}
            for it, g in gains.items()]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "summary.json").write_text(json.dumps({"wall_s": 100}))


def test_rl_bench_report_compares_signal_seeds_with_the_null_seeds_at_each_point(tmp_path: Path) -> None:
    """The difference of means at each evaluation point, with scipy's Welch interval as the reference."""
    import subprocess
    import sys

    from scipy.stats import t, ttest_ind

    signal = {0: {10: 0.10, 20: 0.20}, 1: {10: 0.05, 20: 0.15}, 2: {10: 0.12, 20: 0.22}}
    null = {0: {10: 0.01, 20: -0.04}, 1: {10: -0.03, 20: 0.06}, 2: {10: 0.02, 20: 0.01}}
    for seed in range(3):
        _curve_record(tmp_path, f"signal-s{seed}", "signal", seed, signal[seed])
        _curve_record(tmp_path, f"shuffled-s{seed}", "shuffled", seed, null[seed])
    script = Path(__file__).resolve().parents[1] / "scripts" / "rl_bench_report.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    text = (tmp_path / "results.md").read_text()
    assert "## SIGnAL against the null, 20 iterations, lr 0.001" in text
    for it in (10, 20):
        a, b = [signal[s][it] for s in range(3)], [null[s][it] for s in range(3)]
        ci = ttest_ind(a, b, equal_var=False).confidence_interval()
        diff = np.mean(a) - np.mean(b)
        va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
        df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
        mde = (t.ppf(0.975, df) + t.ppf(0.8, df)) * np.sqrt(va + vb)
        assert (f"| {it} | {np.mean(a):+.4f} | {np.mean(b):+.4f} | {diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] | "
                f"{mde:.4f} |") in text
    # the per-point means over the signal seeds, with a t interval over seeds
    g = [signal[s][20] for s in range(3)]
    half = t.ppf(0.975, 2) * np.std(g, ddof=1) / np.sqrt(3)
    assert f"| 20 | {np.mean(g):+.4f} [{np.mean(g) - half:+.4f}, {np.mean(g) + half:+.4f}] |" in text
    assert (tmp_path / "signal_curve.png").stat().st_size > 10_000


def _control_record(root: Path, name: str, reward: str, iterations: int, lr: float, evals: dict[int, tuple]) -> None:
    """A bench record whose evaluations are ``{iteration: (gain, z)}``."""
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    config = {"reward": reward, "seed": 0, "iterations": iterations, "prompts": 16, "samples": 4, "heldout": 400,
              "heldout_per_prompt": 4, "learning_rate": lr, "kl_coef": 0.1, "advantage": "rloo", "epochs": 1,
              "minibatches": 2, "backend": "vllm-server", "lora_layers": None, "reset_optimizer": False}
    (folder / "config.json").write_text(json.dumps(config))
    rows = [{"kind": "eval", "iteration": it, "gain": g, "gain_lo": g - 0.05, "gain_hi": g + 0.05, "paired_z": z,
             "paired_n": 200, "reward_base": 0.5} for it, (g, z) in evals.items()]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "summary.json").write_text(json.dumps({"wall_s": 1000 + iterations}))


def test_rl_bench_report_sets_the_null_beside_the_positive_control_at_its_last_point(tmp_path: Path) -> None:
    """A longer null run counts at the positive control's last iteration; other settings and shorter runs do not."""
    import subprocess
    import sys

    _control_record(tmp_path, "pos-s0", "classprob", 20, 1e-3, {10: (0.10, 3.0), 20: (0.20, 6.0)})
    _control_record(tmp_path, "pos-s1", "classprob", 20, 1e-3, {10: (0.05, 2.0), 20: (0.14, 5.0)})  # too small
    _control_record(tmp_path, "null40", "shuffled", 40, 1e-3, {20: (-0.03, -1.5), 40: (0.07, 2.5)})
    _control_record(tmp_path, "null10", "shuffled", 10, 1e-3, {10: (0.01, 0.3)})  # never reached 20
    _control_record(tmp_path, "null-lr", "shuffled", 20, 2e-3, {20: (0.09, 3.1)})  # another setting
    script = Path(__file__).resolve().parents[1] / "scripts" / "rl_bench_report.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    text = (tmp_path / "results.md").read_text()
    section = text.split("## The two controls at iteration 20, lr 0.001")[1].split("\n## ")[0]
    assert "| pos-s0 | positive | +0.2000 [+0.1500, +0.2500] | 6.00 | 200 |" in section
    assert "| pos-s1 | positive | +0.1400 [+0.0900, +0.1900] | 5.00 | 200 |" in section
    assert "| null40 | null | -0.0300 [-0.0800, +0.0200] | -1.50 | 200 |" in section  # its iteration 20, not 40
    assert "| 1040 | met |" in section  # the null run's whole wall time, labelled as such
    assert "null10" not in section and "null-lr" not in section
    assert "size goal met in 1 of 2 seeds; null: |z| < 2 in 1 of 1 seeds." in section


def test_rl_bench_report_pools_the_confirmatory_evaluations_against_the_null(tmp_path: Path) -> None:
    """confirm/*/transfer.jsonl: one row per adapter, the t interval over SIGnAL seeds, the inverse-variance
    pooled gains and their difference, checked against a float64 recomputation."""
    import subprocess
    import sys

    from scipy.stats import norm, t

    _curve_record(tmp_path, "signal-s0", "signal", 0, {20: 0.1})  # the report needs one run
    adapters = {"signal40-s0": ("signal", -0.02, -0.5), "signal40-s1": ("signal", 0.03, 1.5),
                "signal40-s2": ("signal", 0.05, 2.5), "shuffled40-s0": ("shuffled", -0.01, -0.4)}
    for name, (reward, gain, z) in adapters.items():
        folder = tmp_path / "confirm" / name
        folder.mkdir(parents=True)
        rows = [{"kind": "transfer", "pool": "train", "reward": reward, "gain": 9.0, "paired_z": 9.0},
                {"kind": "transfer", "pool": "heldout-fresh", "reward": reward, "reward_base": 0.2,
                 "reward_adapter": 0.2 + gain, "gain": gain, "gain_pct": 100 * gain / 0.2, "gain_lo": gain - 0.03,
                 "gain_hi": gain + 0.03, "paired_z": z, "paired_n": 700, "words_base": 16.0, "words_trained": 16.5}]
        (folder / "transfer.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Path(__file__).resolve().parents[1] / "scripts" / "rl_bench_report.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    text = (tmp_path / "results.md").read_text()
    assert "## Confirmatory endpoint" in text and "+9.0000" not in text  # only the heldout-fresh rows
    assert "| signal40-s2 | signal | 0.2000 | 0.2500 | +0.0500 [+0.0200, +0.0800] | +25.0 | 2.50 | 700 |" in text
    section = text[text.index("## Confirmatory endpoint"):]
    assert section.count("| missed |") == 3 and section.count("| met |") == 1  # the null within |z| < 2
    gains = np.array([-0.02, 0.03, 0.05])
    half = t.ppf(0.975, 2) * gains.std(ddof=1) / np.sqrt(3)
    assert (f"mean over 3 seeds (does a new seed gain?): {gains.mean():+.4f}, 95 % t interval over seeds "
            f"[{gains.mean() - half:+.4f}, {gains.mean() + half:+.4f}]") in text
    se = gains / np.array([-0.5, 1.5, 2.5])
    w = 1 / se ** 2
    mean, se_pooled = (w @ gains) / w.sum(), 1 / np.sqrt(w.sum())
    q = norm.ppf(0.975)
    assert (f"inverse-variance pooled (did these adapters gain?): {mean:+.4f} [{mean - q * se_pooled:+.4f}, "
            f"{mean + q * se_pooled:+.4f}], z {mean / se_pooled:.2f}") in text
    se_diff = np.hypot(se_pooled, 0.01 / 0.4)
    diff = mean + 0.01
    assert (f"SIGnAL pooled minus null pooled (3 against 1 adapter(s)): {diff:+.4f} [{diff - q * se_diff:+.4f}, "
            f"{diff + q * se_diff:+.4f}], z {diff / se_diff:.2f}") in text


def test_reward_anatomy_reads_a_packed_record_and_splits_the_variance_exactly(
        tmp_path: Path, tiny_classifier_dir: Path, tiny_generator_dir: Path) -> None:
    """scripts/analyze_rl_reward.py on a signal run's samples.jsonl.gz: headroom by brute force, and the
    gate / in-range parts of the law of total variance adding up to the whole."""
    import gzip
    import importlib.util

    _bench(tmp_path, tiny_classifier_dir, tiny_generator_dir, "signal", prompts=8, samples=4)
    run = tmp_path / "signal"
    plain = run / "samples.jsonl"
    (run / "samples.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    script = Path(__file__).resolve().parents[1] / "scripts" / "analyze_rl_reward.py"
    spec = importlib.util.spec_from_file_location("analyze_rl_reward", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.analyze(run)

    rows = [json.loads(line) for line in gzip.decompress((run / "samples.jsonl.gz").read_bytes()).splitlines()]
    train = [r for r in rows if r["phase"].startswith("train-") and r["drop_reason"] is None]
    assert result["samples"] == len(train)
    by_group: dict[str, list[float]] = {}
    for r in train:
        by_group.setdefault(f"{r['phase']}:{r['group']}", []).append(r["reward"])
    gaps = [max(v) - sum(v) / len(v) for v in by_group.values() if len(v) >= 2]
    assert result["headroom"] == pytest.approx(sum(gaps) / len(gaps), rel=1e-9)
    rewards = np.array([r["reward"] for r in train])
    assert result["gated_share"] == pytest.approx(float(np.mean(rewards == -0.3)))
    if 0 < result["gated_share"] < 1:
        assert result["gate_var_share"] + result["in_range_var_share"] == pytest.approx(1.0, abs=1e-9)
    assert not (run / "analysis-scratch").exists()  # nothing written into the record


def test_transfer_script_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "rl_bench_transfer.py"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)

    missing = run(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "config.json: not found" in missing.stderr
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"reward": "signal", "seed": 0}))
    no_adapter = run(str(run_dir))
    assert no_adapter.returncode == 2 and "pass --adapter" in no_adapter.stderr
    not_adapter = run(str(run_dir), "--adapter", str(tmp_path))
    assert not_adapter.returncode == 2 and "not a saved adapter folder" in not_adapter.stderr
    samples = run(str(run_dir), "--samples", "0")
    assert samples.returncode == 2 and "--samples" in samples.stderr
    pools = run(str(run_dir), "--pools", "train,test")
    assert pools.returncode == 2 and "--pools" in pools.stderr and "train-draws" in pools.stderr
    for result in (missing, no_adapter, not_adapter, samples, pools):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_rl_bench_doctests() -> None:
    import doctest

    import signal_al.experiments.rl_bench as module

    result = doctest.testmod(module)
    assert result.attempted >= 1 and result.failed == 0


def test_rl_bench_report_doctests() -> None:
    """The report's worked examples (the inverse-variance pooling) hold."""
    import doctest
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "rl_bench_report.py"
    spec = importlib.util.spec_from_file_location("rl_bench_report", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted >= 2 and result.failed == 0
