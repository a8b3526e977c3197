"""The reward outside the loop: SignalScorer.from_run, `signal-al score`, verl's compute_score, TRL's
GRPOTrainer, and the README section "Use the reward in your RL stack"."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reward_helpers import LABELED, UNLABELED, fake_run

from signal_al.core.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"
SCRIPT = str(Path(sys.executable).with_name("signal-al"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_classifier_dir) -> Path:
    return fake_run(tmp_path_factory.mktemp("integrations"), tiny_classifier_dir)


@pytest.fixture(scope="module")
def scorer(run_dir):
    from signal_al.rewards.scorer import SignalScorer

    return SignalScorer.from_run(run_dir)


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("## Use the reward in your RL stack")
    end = text.index("\n## ", start + 10)
    return text[start:end]


def test_from_run_reads_the_round_classifier_labeled_set_and_reward_config(run_dir: Path, scorer) -> None:
    from transformers import AutoModelForSequenceClassification

    from signal_al.classifier.inference import predict
    from signal_al.engine.context import RunContext
    from signal_al.engine.store import RunStore
    from signal_al.rewards import signal_scores

    assert scorer.run.round == 1 and scorer.run.label_names == ("negative", "positive")
    assert scorer.labeled_texts == [text for text, _ in LABELED]  # rounds 0 and 1
    assert scorer.params.k == 10 and scorer.max_length == 32
    # the same numbers by hand: the checkpoint's outputs through signal_scores with the reward section
    config = RunStore(run_dir).saved_config()
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "checkpoints" / "classifier-round-001")
    tokenizer = RunContext(config).tokenizer
    lab = predict(model, tokenizer, scorer.labeled_texts, max_length=32)
    new = predict(model, tokenizer, UNLABELED, max_length=32)
    expected = signal_scores(new.probs, new.embeddings, lab.probs, lab.embeddings, k=10)
    np.testing.assert_allclose(scorer(UNLABELED), expected, rtol=1e-6)
    details = scorer.score_details(UNLABELED)
    assert details.scores.tolist() == scorer(UNLABELED).tolist()
    assert (details.distance > 0).all() and (details.kl >= 0).all() and set(details.prediction) <= {0, 1}


def test_from_run_round_and_errors(tmp_path: Path, run_dir: Path, tiny_classifier_dir: Path) -> None:
    from signal_al.rewards.scorer import SignalScorer

    with pytest.raises(UserError, match=r"round 0's classifier checkpoint .* is missing \(kept: "
                                        r"classifier-round-001; a run keeps only its latest classifier\)"):
        SignalScorer.from_run(run_dir, 0)
    with pytest.raises(UserError, match=r"round: the run has rounds 0 to 1, got 5"):
        SignalScorer.from_run(run_dir, 5)
    with pytest.raises(UserError, match="not a run directory"):
        SignalScorer.from_run(tmp_path)
    # an older round whose checkpoint was kept scores against that round's labels only
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.copytree(copy / "checkpoints" / "classifier-round-001", copy / "checkpoints" / "classifier-round-000")
    old = SignalScorer.from_run(copy, 0)
    assert old.run.round == 0 and old.labeled_texts == [text for text, _ in LABELED[:3]]


def test_from_run_with_relevance_uses_the_real_unlabeled_pool(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    from signal_al.rewards.scorer import SignalScorer

    run = fake_run(tmp_path, tiny_classifier_dir, "relevance", reward={"relevance": "quantile", "k": 3})
    scorer = SignalScorer.from_run(run)
    assert scorer.params.relevance == "quantile" and scorer.params.k == 3 and scorer._reference_texts == UNLABELED
    assert scorer(["a funny story"]).shape == (1,)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_score_command_writes_scores_and_parts_next_to_the_input(tmp_path: Path, run_dir: Path, scorer,
                                                                 suffix: str) -> None:
    from signal_al.cli import main

    frame = pd.DataFrame({"text": UNLABELED, "note": list("abcd")})
    path = tmp_path / f"texts{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    assert main(["score", "--run", str(run_dir), str(path)]) == 0
    out = tmp_path / f"texts.scores{suffix}"
    got = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix](out)
    assert list(got.columns) == ["text", "note", "signal_score", "knn_distance", "kl", "predicted_label", "confidence"]
    details = scorer.score_details(UNLABELED)
    np.testing.assert_allclose(got["signal_score"], details.scores, rtol=1e-9)
    np.testing.assert_allclose(got["knn_distance"], details.distance, rtol=1e-9)
    np.testing.assert_allclose(got["kl"], details.kl, rtol=1e-9)
    assert set(got["predicted_label"]) <= {"negative", "positive"} and got["note"].tolist() == list("abcd")


def test_score_command_pairs_output_and_errors(tmp_path: Path, tiny_classifier_dir: Path, capsys) -> None:
    from signal_al.cli import main
    from signal_al.rewards.scorer import SignalScorer

    run = fake_run(tmp_path, tiny_classifier_dir, "pairs", pairs=True)
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"question": ["a film", "a plot"], "text_pair": ["good", "bad"]}).to_csv(path, index=False)
    out = tmp_path / "out" / "scored.jsonl"
    assert main(["score", "--run", str(run), "--text-column", "question", str(path), "--output", str(out)]) == 0
    assert "scored 2 texts with round 1" in capsys.readouterr().out
    got = pd.read_json(out, lines=True)
    expected = SignalScorer.from_run(run)(["a film", "a plot"], ["good", "bad"])
    np.testing.assert_allclose(got["signal_score"], expected, rtol=1e-9)
    assert main(["score", "--run", str(run), str(path)]) == 2
    assert "no column 'text' (columns: question, text_pair); choose one with --text-column" in capsys.readouterr().err
    assert main(["score", "--run", str(tmp_path / "nope"), str(path)]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_verl_compute_score_from_the_environment_and_extra_info(run_dir: Path, scorer, monkeypatch) -> None:
    from signal_al.integrations import verl

    monkeypatch.delenv(verl.RUN_ENV, raising=False)
    with pytest.raises(UserError, match="set SIGNAL_AL_RUN"):
        verl.compute_score("rt", "a funny story", None)
    monkeypatch.setenv(verl.RUN_ENV, str(run_dir))
    value = verl.compute_score("rt-movies", "a funny story", "", extra_info={"index": 0})
    # another scorer instance: equal up to float32 rounding (the tiny random classifier amplifies it)
    assert isinstance(value, float) and value == pytest.approx(float(scorer(["a funny story"])[0]), rel=5e-3)
    assert verl.compute_score("rt-movies", "   ", None) == -1.0  # empty: the run's invalid_penalty
    assert verl.compute_score("rt-movies", LABELED[0][0], None) == -1.0  # a copy of a labeled text
    monkeypatch.delenv(verl.RUN_ENV)
    assert verl.compute_score("x", "a funny story", None, extra_info={"signal_al_run": str(run_dir)}) == value
    batch = verl.compute_score_batch(data_sources=np.array(["rt"] * 3, dtype=object),
                                     solution_strs=["a funny story", "", "the film was very sad"],
                                     ground_truths=[None] * 3,
                                     extra_infos=np.array([{"signal_al_run": str(run_dir)}] * 3, dtype=object))
    assert batch[0] == pytest.approx(value, rel=5e-3) and batch[1] == -1.0
    np.testing.assert_allclose(batch[2], scorer(["the film was very sad"])[0], rtol=5e-3)
    with pytest.raises(UserError, match="must be a round number"):
        verl.compute_score("x", "t", None, extra_info={"signal_al_run": str(run_dir), "signal_al_round": "last"})


def test_verl_hook_loads_by_file_path_as_verl_does(run_dir: Path) -> None:
    """verl imports custom_reward_function.path with importlib from a file path; the README says how."""
    section = _readme_section()
    assert "custom_reward_function.path=" in section and "custom_reward_function.name=compute_score" in section
    code = ("import importlib.util, signal_al.integrations.verl as m\n"
            "spec = importlib.util.spec_from_file_location('custom_module', m.__file__)\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "print(module.compute_score('rt-movies', 'a funny story', None))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**__import__("os").environ, "SIGNAL_AL_RUN": str(run_dir)})
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) >= 0.0


def test_readme_section_has_the_three_snippets() -> None:
    section = _readme_section()
    assert "signal-al serve-reward --run runs/demo" in section and "--remote_rm_url http://127.0.0.1:5000/get_reward" \
        in section
    assert "get_signal_reward(SignalScorer.from_run(\"runs/demo\"))" in section
    assert "SIGNAL_AL_RUN=runs/demo" in section
    assert len(re.findall(r"```(?:bash|python)", section)) >= 3


def test_trl_grpo_trainer_one_step_with_the_run_reward(run_dir: Path, tmp_path: Path) -> None:
    """The README's TRL snippet: GRPOTrainer with get_signal_reward(SignalScorer.from_run(...)), one step."""
    from datasets import Dataset
    from helpers import tiny_qwen2_with_smollm2_tokenizer
    from trl import GRPOConfig, GRPOTrainer

    from signal_al.rewards import SignalScorer, get_signal_reward

    model, tokenizer = tiny_qwen2_with_smollm2_tokenizer(max_positions=256)
    calls: list[list[float]] = []
    signal_reward = get_signal_reward(SignalScorer.from_run(run_dir))

    def reward(prompts, completions, **kwargs):
        calls.append(signal_reward(prompts, completions, **kwargs))
        return calls[-1]

    reward.__name__ = "signal_reward"
    dataset = Dataset.from_dict({"prompt": ["Write a movie review:", "Write a new example:"]})
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, max_steps=1, logging_steps=1, save_strategy="no", report_to="none",
                      use_cpu=True, bf16=False, learning_rate=1e-3, seed=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=reward, train_dataset=dataset,
                          args=args)
    result = trainer.train()
    assert result.global_step == 1 and len(calls) >= 1
    assert all(isinstance(r, float) and np.isfinite(r) for r in calls[0]) and len(calls[0]) == 4
    logged = [row for row in trainer.state.log_history if "rewards/signal_reward/mean" in row]
    assert logged, trainer.state.log_history
    assert json.dumps(logged)
