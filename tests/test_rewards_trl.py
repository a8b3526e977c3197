"""The text-level scorer on a tiny classifier, and the SIGnAL reward inside a real trl.GRPOTrainer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from signal_al.classifier.inference import predict
from signal_al.rewards import (RewardConfig, RewardShaping, ScoreParams, get_signal_reward, knn_mean_distances,
                               signal_scores)
from signal_al.rewards.scorer import SignalScorer

LABELED = ["great movie", "bad film", "the plot was slow", "loved the music", "boring story", "fun actors"]
CANDIDATES = ["a great plot", "the film was awful", "really funny and sad", "great movie"]


def test_scorer_equals_signal_scores_on_classifier_outputs(tiny_bert):
    model, tokenizer = tiny_bert
    scorer = SignalScorer(model, tokenizer, LABELED, params=RewardConfig(k=3, kl_direction="reverse"))
    got = scorer(CANDIDATES)
    u = predict(model, tokenizer, CANDIDATES)
    lab = predict(model, tokenizer, LABELED)
    want = signal_scores(u.probs, u.embeddings, lab.probs, lab.embeddings, k=3, kl_direction="reverse")
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.isfinite(got).all()
    assert got[3] == pytest.approx(0.0, abs=1e-9)  # a copy of a labeled text agrees with itself


def test_scorer_caches_labeled_features_until_told_otherwise(tiny_bert):
    model, tokenizer = tiny_bert
    scorer = SignalScorer(model, tokenizer, LABELED, k=2)
    seen: list[int] = []
    original = scorer._predict

    def counting(texts, pairs):
        seen.append(len(texts))
        return original(texts, pairs)

    scorer._predict = counting
    scorer(CANDIDATES)
    scorer(CANDIDATES[:2])
    assert seen == [len(LABELED), 4, 2]  # labeled set encoded once
    scorer.refresh()
    scorer(CANDIDATES[:1])
    scorer.set_labeled(LABELED[:2])
    out = scorer(CANDIDATES[:1], return_neighbors=True)
    assert seen == [len(LABELED), 4, 2, len(LABELED), 1, 2, 1]
    assert out.neighbors.shape == (1, 2)
    assert scorer([]).shape == (0,)


def test_scorer_options_and_errors(tiny_bert):
    model, tokenizer = tiny_bert
    scorer = SignalScorer(model, tokenizer, LABELED, params=RewardConfig(k=4, eps=1e-3), k=1, normalize=False)
    assert scorer.params == ScoreParams(k=1, eps=1e-3, normalize=False)
    with pytest.raises(ValueError, match="labeled_texts"):
        SignalScorer(model, tokenizer, [])
    with pytest.raises(ValueError, match="labeled_pairs"):
        SignalScorer(model, tokenizer, ["a", "b"], ["a"])


def test_scorer_relevance_uses_the_reference_texts(tiny_bert):
    model, tokenizer = tiny_bert
    reference = ["the acting was fine", "a long and quiet film", "what a show", "too many songs"]
    config = RewardConfig(k=3, relevance="typical", relevance_quantile=0.75)
    scorer = SignalScorer(model, tokenizer, LABELED, params=config, reference_texts=reference)
    got = scorer(CANDIDATES)
    u, lab, ref = (predict(model, tokenizer, t) for t in (CANDIDATES, LABELED, reference))
    distances = knn_mean_distances(ref.embeddings, lab.embeddings, k=3)
    want = signal_scores(u.probs, u.embeddings, lab.probs, lab.embeddings, config,
                         reference_distances=distances)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(scorer.reference_distances(), distances, rtol=1e-6)
    with pytest.raises(ValueError, match="reference_texts: relevance='typical' needs"):
        SignalScorer(model, tokenizer, LABELED, params=config)


def test_scorer_of_a_state_calibrates_on_the_one_relevance_reference(tiny_bert):
    """SignalScorer.from_state (the held-out comparison, SignalScorer.from_run) takes the labels of rounds
    0..r and, for relevance, the real items unlabeled by then; with every real item labeled, the labeled ones
    stand in, each measured without itself, as the strategy's reference_distances does."""
    from test_relevance import ref_mean_distances

    from signal_al.core.run_state import Annotation, Item, RunState

    model, tokenizer = tiny_bert
    unlabeled = ["a quiet film", "what a show"]
    items = [Item(f"l{i}", text) for i, text in enumerate(LABELED)]
    items += [Item(f"u{i}", text) for i, text in enumerate(unlabeled)]
    items.append(Item("s0", "too many songs", source="synthetic", round=1))
    annotations = [Annotation(f"l{i}", i % 3, 0 if i < 3 else 1, "ground_truth") for i in range(len(LABELED))]
    state = RunState(items=items, annotations=annotations)
    config = RewardConfig(k=3, relevance="quantile")

    def embeddings(texts):
        return predict(model, tokenizer, texts).embeddings.astype(np.float64)

    scorer = SignalScorer.from_state(model, tokenizer, state, params=config)
    assert scorer.labeled_texts == LABELED
    np.testing.assert_allclose(scorer.reference_distances(),
                               ref_mean_distances(embeddings(unlabeled), embeddings(LABELED), 3), rtol=1e-5)
    early = SignalScorer.from_state(model, tokenizer, state, round=0, params=config)  # rounds 0..0
    assert early.labeled_texts == LABELED[:3]
    np.testing.assert_allclose(early.reference_distances(),
                               ref_mean_distances(embeddings([*LABELED[3:], *unlabeled]), embeddings(LABELED[:3]), 3),
                               rtol=1e-5)
    every_real_labeled = RunState(items=[*items[:len(LABELED)], items[-1]], annotations=annotations)
    scorer = SignalScorer.from_state(model, tokenizer, every_real_labeled, params=config)
    labeled = embeddings(LABELED)
    want = [ref_mean_distances(labeled[i:i + 1], np.delete(labeled, i, axis=0), 3)[0] for i in range(len(LABELED))]
    np.testing.assert_allclose(scorer.reference_distances(), want, rtol=1e-5)
    assert SignalScorer.from_state(model, tokenizer, state).reference_distances() is None  # relevance none


def test_reward_function_on_the_real_scorer(tiny_bert):
    model, tokenizer = tiny_bert
    scorer = SignalScorer(model, tokenizer, LABELED, k=3)
    reward = get_signal_reward(scorer, RewardShaping(max_chars=60))
    completions = [[{"role": "assistant", "content": c}] for c in [*CANDIDATES, ""]]
    out = reward(prompts=["write a review"] * 5, completions=completions)
    np.testing.assert_allclose(out[:3], scorer(CANDIDATES[:3]), rtol=1e-6)
    assert out[3:] == [-1.0, -1.0]  # copy of a labeled text, empty


def test_grpo_trainer_step_with_signal_reward(tmp_path, tiny_bert, tiny_causal_lm):
    """One real GRPOTrainer optimisation step on CPU with the SIGnAL reward as reward_funcs."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    classifier, classifier_tokenizer = tiny_bert
    scorer = SignalScorer(classifier, classifier_tokenizer, LABELED, k=3)
    reward = get_signal_reward(scorer, RewardShaping(max_chars=200, whiten=True, clip=3.0))
    calls: list[list] = []

    class Recording:
        __name__ = "signal_reward"

        def __call__(self, prompts, completions, **kwargs):
            calls.append(list(completions))
            assert kwargs["in_context"] == [["great movie", "bad film"]] * len(completions)
            return reward(prompts, completions, **kwargs)

    generator, tokenizer = tiny_causal_lm
    before = {n: p.detach().clone() for n, p in generator.named_parameters()}
    dataset = Dataset.from_dict({
        "prompt": ["write a new review : great movie . bad film . review :"] * 4,
        "in_context": [["great movie", "bad film"]] * 4,
    })
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
        max_steps=1, learning_rate=1e-2, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        bf16=False, seed=0, disable_dropout=True, dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(model=generator, reward_funcs=Recording(), args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()

    assert trainer.state.global_step == 1
    assert len(calls) == 1 and len(calls[0]) == 4 and all(isinstance(c, str) for c in calls[0])
    logs = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert math.isfinite(logs["rewards/signal_reward/mean"])
    assert "signal/invalid_fraction" in logs
    if logs["rewards/signal_reward/std"] > 0:  # distinct rewards give a non-zero advantage: weights move
        assert any(not np.allclose(before[n], p.detach()) for n, p in trainer.model.named_parameters())
