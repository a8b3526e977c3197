"""`signal-al evaluate-generator`: self-BLEU and relevance against brute-force references, the
same samples for the same checkpoint, a LoRA that changes them, and the command on a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from signal_al.classifier.config import ClassifierConfig
from signal_al.classifier.metrics import self_bleu
from signal_al.cli import main
from signal_al.config import ExperimentConfig, GeneratorConfig, RewardConfig
from signal_al.core.config_io import load_config
from signal_al.data.task import TaskSpec, TextDataset
from signal_al.experiments.generator_eval import (Checkpoint, Reference, checkpoint_metrics, generate_samples,
                                                  nearest_distances, served_name)
from signal_al.generation.records import Candidate

VOCAB = "the a movie film was great good bad boring fun plot story not very".split()


class ParityAnnotator:
    """Stands in for the model annotator (training one on the full train split is slow)."""

    name = "parity"

    def __init__(self, num_labels: int = 2) -> None:
        self.num_labels = num_labels

    def annotate(self, items: list) -> list[int]:
        return [len(item.text.split()) % self.num_labels for item in items]


# --- brute-force references ----------------------------------------------------------------------


def _count(words: list[str], gram: tuple[str, ...]) -> int:
    n = len(gram)
    return sum(tuple(words[k:k + n]) == gram for k in range(len(words) - n + 1))


def brute_self_bleu(texts: list[str], max_n: int = 4, epsilon: float = 0.1) -> float:
    """Sentence BLEU of each text against every other text, spelled out literally."""
    tokens = [t.split() for t in texts]
    scores = []
    for i, hyp in enumerate(tokens):
        refs = [t for j, t in enumerate(tokens) if j != i]
        log_p, no_unigram = 0.0, False
        for n in range(1, max_n + 1):
            grams = [tuple(hyp[k:k + n]) for k in range(len(hyp) - n + 1)]
            matched = sum(min(grams.count(g), max(_count(r, g) for r in refs)) for g in set(grams))
            if n == 1 and matched == 0:
                no_unigram = True
                break
            log_p += math.log((matched if matched else epsilon) / max(1, len(grams))) / max_n
        if no_unigram:
            scores.append(0.0)
            continue
        closest = min((len(r) for r in refs), key=lambda length: (abs(length - len(hyp)), length))
        brevity = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
        scores.append(brevity * math.exp(log_p))
    return sum(scores) / len(scores)


def test_self_bleu_hand_worked_cases() -> None:
    assert self_bleu(["a b c d", "a b c d"]) == pytest.approx(1.0)
    assert self_bleu(["a b", "c d"]) == 0.0
    assert self_bleu(["only one"]) is None and self_bleu([]) is None
    # p1 = 2/3, p2 = 1/2, no trigram or 4-gram match: smoothed to 0.1 / count (count floor 1)
    assert self_bleu(["the cat sat", "the cat ran"]) == pytest.approx((2 / 3 * 1 / 2 * 0.1 / 1 * 0.1 / 1) ** 0.25)
    # "a b c d" vs "a b": 2/4, 1/3, 0.1/2, 0.1/1, no brevity penalty (longer);
    # "a b" vs "a b c d": 2/2, 1/1, 0.1/1, 0.1/1, brevity penalty exp(1 - 4/2)
    long = (2 / 4 * 1 / 3 * 0.1 / 2 * 0.1 / 1) ** 0.25
    short = math.exp(1 - 4 / 2) * (1.0 * 1.0 * 0.1 * 0.1) ** 0.25
    assert self_bleu(["a b c d", "a b"]) == pytest.approx((long + short) / 2)


def test_self_bleu_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for trial in range(25):
        count = int(rng.integers(2, 9))
        texts = [" ".join(rng.choice(VOCAB[: 3 + trial % 6], size=int(rng.integers(0 if trial % 5 == 0 else 1, 10))))
                 for _ in range(count)]
        if trial % 4 == 0:
            texts.append(texts[0])  # a duplicate: its n-grams are all matched
        assert self_bleu(texts) == pytest.approx(brute_self_bleu(texts), rel=1e-12, abs=1e-15), texts


def test_nearest_distances_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    references = (rng.normal(size=(25, 8)) * rng.uniform(0.1, 10, size=(25, 1))).astype(np.float32)
    queries = rng.normal(size=(40, 8)).astype(np.float32)
    queries[0] = 3.0 * references[7]  # the same direction: distance 0 after normalisation
    got = nearest_distances(queries, references)
    q = queries.astype(np.float64) / np.linalg.norm(queries.astype(np.float64), axis=1, keepdims=True)
    r = references.astype(np.float64) / np.linalg.norm(references.astype(np.float64), axis=1, keepdims=True)
    expected = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert got[0] == pytest.approx(0.0, abs=1e-5)


# --- generation with tiny random models -------------------------------------------------------


SPEC = TaskSpec("tiny", ("negative", "neutral", "positive"), "movie reviews")


def _pool() -> TextDataset:
    texts = ["the movie was great", "a boring plot", "the story was not fun", "very good film", "bad actors",
             "the ending was slow", "a fun movie", "not a good story"]
    return TextDataset(texts=texts, labels=[i % 3 for i in range(len(texts))], ids=[f"r{i}" for i in range(len(texts))])


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory, tiny_generator_dir: Path) -> Path:
    from helpers import random_lora

    return random_lora(tiny_generator_dir, tmp_path_factory.mktemp("lora") / "adapter")


def _generator_config(model: Path) -> GeneratorConfig:
    return GeneratorConfig(model=str(model), backend="transformers", dtype="float32", max_new_tokens=12,
                           min_words=1, num_in_context=1)


def test_same_checkpoint_same_samples_and_a_lora_changes_them(tiny_generator_dir: Path, lora_dir: Path) -> None:
    from signal_al.generation.generator import create_generator

    generator = create_generator(_generator_config(tiny_generator_dir), SPEC, seed=0)
    pool = _pool()
    run = lambda checkpoint: generate_samples(generator, checkpoint, pool, 6, seed=3)  # noqa: E731
    base = run(Checkpoint("base"))  # before any adapter is loaded
    lora = run(Checkpoint("lora", lora_dir))
    again = run(Checkpoint("lora again", lora_dir))
    base_again = run(Checkpoint("base"))  # now through the adapter-disabled peft model
    sampled = lambda cs: [(c.prompt, c.seed, c.completion_token_ids, c.raw_output) for c in cs]  # noqa: E731

    assert sampled(base) == sampled(base_again)
    assert sampled(lora) == sampled(again)
    assert [(c.prompt, c.seed) for c in lora] == [(c.prompt, c.seed) for c in base]  # the same prompts and seeds
    assert len({c.prompt for c in base}) > 1
    assert [c.completion_token_ids for c in lora] != [c.completion_token_ids for c in base]
    assert {c.adapter for c in base} == {None} and {c.adapter for c in lora} == {served_name(lora_dir)}


def _candidate(text: str | None, reason: str | None = None) -> Candidate:
    return Candidate(prompt="p", prompt_text="p", prompt_token_ids=[1], completion_token_ids=[2], raw_output=text or "",
                     text=None if reason else text, drop_reason=reason)


def test_checkpoint_metrics_against_independent_recomputation(tiny_bert) -> None:
    from signal_al.classifier.inference import predict
    from signal_al.data.pools import real_items
    from signal_al.rewards import signal_scores

    model, tokenizer = tiny_bert
    pool = _pool()
    labeled = real_items(pool)[:5]
    reference = Reference(spec=SPEC, pool=pool, labeled_items=labeled, labeled_labels=[0, 1, 2, 0, 1],
                          classifier=model, tokenizer=tokenizer, annotator=ParityAnnotator(3),
                          reward=RewardConfig(k=3), classifier_config=ClassifierConfig(max_length=32))
    texts = ["a fun story", "the plot was very bad", "not a good film at all", "boring boring movie", "great"]
    candidates = [_candidate(texts[0]), _candidate("", "empty"), *map(_candidate, texts[1:]),
                  _candidate("the movie was great", "duplicate")]
    result = checkpoint_metrics(candidates, reference)
    row = result.row

    assert row["n"] == 7 and row["n_valid"] == 5 and row["valid_fraction"] == pytest.approx(5 / 7)
    assert row["self_bleu"] == pytest.approx(brute_self_bleu(texts), rel=1e-12)
    words = [t.split() for t in texts]
    unigrams = [w for ws in words for w in ws]
    bigrams = [tuple(ws[i:i + 2]) for ws in words for i in range(len(ws) - 1)]
    assert row["distinct_1"] == pytest.approx(len(set(unigrams)) / len(unigrams))
    assert row["distinct_2"] == pytest.approx(len(set(bigrams)) / len(bigrams))

    outputs = predict(model, tokenizer, texts, max_length=32)
    lab = predict(model, tokenizer, [i.text for i in labeled], max_length=32)
    rewards = signal_scores(outputs.probs, outputs.embeddings, lab.probs, lab.embeddings, k=3)
    assert row["reward_mean"] == pytest.approx(rewards.mean(), rel=1e-6)
    assert row["reward_std"] == pytest.approx(rewards.std(), rel=1e-6)

    real = predict(model, tokenizer, pool.texts, max_length=32).embeddings.astype(np.float64)
    emb = outputs.embeddings.astype(np.float64)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    nearest = np.sqrt(((unit(emb)[:, None] - unit(real)[None]) ** 2).sum(-1)).min(axis=1)
    assert row["relevance_distance"] == pytest.approx(nearest.mean(), rel=1e-5)

    labels = [len(t.split()) % 3 for t in texts]
    counts = [labels.count(c) for c in range(3)]
    assert [row[f"label_{name}"] for name in SPEC.label_names] == counts
    assert row["label_std"] == pytest.approx(np.std(counts))
    assert result.labels == labels and [i.text for i in result.items] == texts

    kept = [r for r in result.records if r["drop_reason"] is None]
    assert len(result.records) == 7 and [r["text"] for r in kept] == texts
    assert [r["reward"] for r in kept] == pytest.approx(rewards.tolist(), rel=1e-6)
    assert all(r["reward"] is None for r in result.records if r["drop_reason"] is not None)


def test_no_valid_sample_gives_empty_metrics_not_nan(tiny_bert) -> None:
    model, tokenizer = tiny_bert
    pool = _pool()
    from signal_al.data.pools import real_items

    reference = Reference(spec=SPEC, pool=pool, labeled_items=real_items(pool)[:3], labeled_labels=[0, 1, 2],
                          classifier=model, tokenizer=tokenizer, annotator=ParityAnnotator(3),
                          reward=RewardConfig(k=3), classifier_config=ClassifierConfig(max_length=32))
    row = checkpoint_metrics([_candidate("", "empty"), _candidate("x", "chatter")], reference).row
    assert row["valid_fraction"] == 0.0 and row["reward_mean"] is None and row["relevance_distance"] is None
    assert row["self_bleu"] is None and row["label_std"] == 0.0


# --- the command on a tiny run directory ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_classifier_dir: Path, tiny_generator_dir: Path) -> Path:
    """A SIGnAL run directory as the loop leaves it after round 1: config, state, classifier, adapter."""
    from helpers import random_lora

    from signal_al.classifier.training import load_classifier
    from signal_al.core.config_io import to_dict
    from signal_al.core.io_utils import atomic_write_json
    from signal_al.core.run_state import Annotation, RunState
    from signal_al.data import load_task, real_pool
    from signal_al.data.pools import real_items

    root = tmp_path_factory.mktemp("eval_run")
    data = {
        "name": "signal", "output_dir": str(root), "seed": 1, "device": "cpu",
        "data": {"task": "rt-movies", "pool_size": 20, "max_test_size": 30},
        "classifier": {"model": str(tiny_classifier_dir), "max_length": 32, "batch_size": 8, "epochs": 1,
                       "min_steps": 2, "eval_batch_size": 64, "learning_rate": 1e-3},
        "generator": {"model": str(tiny_generator_dir), "backend": "transformers", "dtype": "float32",
                      "max_new_tokens": 12, "min_words": 1, "num_in_context": 1},
        "reward": {"k": 3},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(data))
    config = load_config(ExperimentConfig, root / "c.yaml")
    run_dir = config.run_dir
    task = load_task(config.data)
    pool = real_pool(task, config.data, seed=config.seed)
    load_classifier(str(tiny_classifier_dir), task.spec.label_names).save_pretrained(
        run_dir / "checkpoints" / "classifier-round-001")
    random_lora(tiny_generator_dir, run_dir / "adapters" / "round-001")
    state = RunState(round=1, pool_size=len(pool), items=real_items(pool),
                     annotations=[Annotation(pool.ids[i], int(pool.labels[i]), 0, "ground_truth") for i in range(6)],
                     checkpoint="checkpoints/classifier-round-001", adapter="adapters/round-001")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    atomic_write_json(run_dir / "state.json", state.to_dict())
    return run_dir


@pytest.fixture()
def parity_annotator(monkeypatch: pytest.MonkeyPatch) -> None:
    from signal_al.engine.context import RunContext

    monkeypatch.setattr(RunContext, "model_annotator", lambda self: ParityAnnotator(2))


def test_cli_writes_table_plot_and_samples(tiny_run: Path, parity_annotator: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate-generator", str(tiny_run), "--n", "6", "--accuracy-gain"]) == 0
    out_dir = tiny_run / "generator_eval"
    table = pd.read_csv(out_dir / "generator_eval.csv")
    assert table["checkpoint"].tolist() == ["base", "adapters/round-001"]
    assert (table["n"] == 6).all() and table["valid_fraction"].between(0, 1).all()
    assert (table["label_negative"] + table["label_positive"] == table["n_valid"]).all()
    baseline = table["accuracy"] - table["accuracy_gain"]
    assert baseline.iloc[0] == pytest.approx(baseline.iloc[1])  # one fixed labeled set, one training seed
    markdown = (out_dir / "generator_eval.md").read_text()
    assert "| base |" in markdown and "| adapters/round-001 |" in markdown
    assert f"labeled set alone: {baseline.iloc[0]:.4f}" in markdown
    assert (out_dir / "generator_eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = [json.loads(line) for line in (out_dir / "samples.jsonl").read_text().splitlines()]
    by_checkpoint = {name: [s for s in samples if s["checkpoint"] == name] for name in table["checkpoint"]}
    assert [s["prompt"] for s in by_checkpoint["base"]] == [s["prompt"] for s in by_checkpoint["adapters/round-001"]]
    assert "| checkpoint | n | valid |" in capsys.readouterr().out


def test_plan_picks_checkpoints_and_rejects_folders_that_are_not_adapters(tiny_run: Path) -> None:
    from signal_al.core.errors import UserError
    from signal_al.experiments.generator_eval import plan_run_evaluation

    latest = plan_run_evaluation(tiny_run)
    assert [(c.name, c.path) for c in latest.checkpoints] == [
        ("base", None), ("adapters/round-001", (tiny_run / "adapters/round-001").resolve())]
    assert latest.output_dir == tiny_run / "generator_eval"
    every = plan_run_evaluation(tiny_run, all_adapters=True, adapters=[str(tiny_run.resolve() / "adapters/round-001")])
    assert [c.name for c in every.checkpoints] == ["base", "adapters/round-001"]  # the same folder once
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        plan_run_evaluation(tiny_run, adapters=["checkpoints/classifier-round-001"])


def test_cli_missing_adapter_is_one_line_exit_2(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate-generator", str(tiny_run), "--adapters", "adapters/round-009"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("signal-al: error: adapter adapters/round-009: no such folder")


def test_cli_run_dir_without_state_is_one_line_exit_2(tmp_path: Path, tiny_run: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    assert main(["evaluate-generator", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"signal-al: error: {tmp_path}: no state.json; the run has not started\n"
