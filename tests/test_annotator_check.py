"""The annotator check: synthetic labels against a reference annotator, recomputed by hand."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import signal_al.experiments.annotator_check as annotator_check
from signal_al.cli import main
from signal_al.config import ExperimentConfig
from signal_al.core.config_io import load_config
from signal_al.engine.context import RunContext
from signal_al.engine.store import RunStore
from signal_al.experiments.annotator_check import check_run, wilson_interval


def test_doctests() -> None:
    result = doctest.testmod(annotator_check)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("successes, trials", [(0, 20), (3, 40), (17, 50), (50, 50)])
def test_wilson_bounds_solve_the_score_equation(successes: int, trials: int) -> None:
    """Each bound p of the Wilson interval satisfies |p_hat - p| = z sqrt(p (1 - p) / n)."""
    low, high = wilson_interval(successes, trials)
    p_hat, z = successes / trials, 1.96
    for bound in (low, high):
        if 0.0 < bound < 1.0:
            assert abs(p_hat - bound) == pytest.approx(z * math.sqrt(bound * (1 - bound) / trials), rel=1e-9)
    assert low <= p_hat <= high


def _argmax_labels(annotator, texts: list[str]) -> np.ndarray:
    """The annotator's labels from a direct forward pass (not through ModelAnnotator.annotate)."""
    import torch

    batch = annotator.tokenizer(texts, truncation=True, max_length=annotator.config.max_length, padding=True,
                                return_tensors="pt")
    with torch.no_grad():
        logits = annotator.model(**batch).logits.double().numpy()
    return logits.argmax(axis=1)


def test_check_run_relabels_the_synthetic_items(tmp_path: Path, tiny_classifier_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    from signal_al.assets.registry import cache_dir

    cache = tmp_path / "cache"  # the annotators are trained here; the corpora are linked from the shared cache
    cache.mkdir()
    for name in ("corpora", "downloads"):
        if (cache_dir(None) / name).exists():
            (cache / name).symlink_to(cache_dir(None) / name)
    monkeypatch.setenv("SIGNAL_AL_CACHE", str(cache))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "name": "check", "output_dir": str(tmp_path / "runs"), "seed": 1, "device": "cpu",
        "data": {"task": "rt-movies", "pool_size": 20, "max_test_size": 30},
        "classifier": {"model": str(tiny_classifier_dir), "max_length": 32, "batch_size": 8, "epochs": 1,
                       "min_steps": 2, "eval_batch_size": 64, "learning_rate": 1e-3},
        "active_learning": {"strategy": "signal", "annotator": "model", "annotator_max_steps": 2}}))
    config = load_config(ExperimentConfig, path)
    run_dir = tmp_path / "runs" / "check"
    RunStore(run_dir).write_config(config)
    pool = RunContext(config).pool
    real = [{"id": i, "text": t, "text_pair": None, "source": "real", "label": int(y)}
            for i, t, y in list(zip(pool.ids, pool.texts, pool.labels.tolist()))[:8]]
    synthetic_texts = [f"a {word} film that {verb} me" for word in ("great", "dull", "odd", "warm", "cold")
                       for verb in ("moved", "bored", "lost")]

    def write(labels: list[int]) -> None:
        rows = real + [{"id": f"syn:r1:{i}", "text": t, "text_pair": None, "source": "synthetic", "label": y}
                       for i, (t, y) in enumerate(zip(synthetic_texts, labels))]
        (run_dir / "labeled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write([0] * len(synthetic_texts))
    annotators: dict = {}
    check_run(run_dir, 3, progress=False, annotators=annotators)
    loaded = {key[-1]: value.annotator for key, value in annotators.items()}  # keyed by recipe, last: the step cap
    own, reference = loaded[2], loaded[3]
    own_labels = _argmax_labels(own, synthetic_texts)
    stored = [int(y) if i % 2 == 0 else 1 - int(y) for i, y in enumerate(own_labels)]  # every other label flipped
    write(stored)

    check = check_run(run_dir, 3, progress=False, annotators=annotators)
    assert len(annotators) == 2 and {key[-1]: value.annotator for key, value in annotators.items()} == loaded  # reused
    assert check.reproduced == pytest.approx(sum(i % 2 == 0 for i in range(15)) / 15)
    reference_labels = _argmax_labels(reference, synthetic_texts)
    expected = int((np.asarray(stored) != reference_labels).sum())
    assert check.synthetic["n"] == 15 and check.synthetic["disagree"] == expected
    assert check.synthetic["rate"] == pytest.approx(expected / 15)
    # the control: the two annotators on the test split, which neither trained on
    test = RunContext(config).data.test
    own_test, reference_test = _argmax_labels(own, test.texts), _argmax_labels(reference, test.texts)
    assert check.test["n"] == len(test.texts)
    assert check.test["disagree"] == int((own_test != reference_test).sum())

    pool_run = tmp_path / "runs" / "pool-based"  # only real labels: skipped, not reported as an empty row
    RunStore(pool_run).write_config(config)
    (pool_run / "labeled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in real))
    out = tmp_path / "check.json"
    capsys.readouterr()
    assert main(["check-annotator", str(tmp_path / "runs"), "--reference-steps", "3", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["pooled"]["disagree"] == expected and [r["run"] for r in saved["runs"]] == [str(run_dir)]
    assert "skipped 1 run(s) without synthetic labels: pool-based" in capsys.readouterr().out
    assert main(["check-annotator", str(pool_run), "--reference-steps", "3"]) == 2
    assert "has synthetic labels to check" in capsys.readouterr().err


def test_check_annotator_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check-annotator", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["check-annotator", str(tmp_path)]) == 2
    assert "no run folder under it" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-annotator", str(tmp_path), "--reference-steps", "0"])
    assert "positive number of steps or 'full'" in capsys.readouterr().err
