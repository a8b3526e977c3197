"""RL reward shaping and the TRL reward-function adapter (with stand-in scorers)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from signal_al.rewards import RewardShaping, completion_text, get_signal_reward, invalid_reasons, shape_rewards, whiten


class LengthScorer:
    """Picklable stand-in scorer: score = number of words; remembers what it was asked."""

    def __init__(self, labeled_texts=()):
        self.labeled_texts = list(labeled_texts)
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.array([len(t.split()) for t in texts], dtype=float)


def test_whiten_and_degenerate_cases():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    w = whiten(x)
    assert w.mean() == pytest.approx(0.0, abs=1e-12) and w.std() == pytest.approx(1.0)
    assert whiten(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]
    assert whiten(np.array([5.0])).tolist() == [0.0]


def test_shape_rewards_penalises_invalid_then_whitens_and_clips_valid_only():
    scores = np.array([0.0, 1.0, 2.0, 100.0, 7.0])
    invalid = np.array([False, False, False, False, True])
    raw = shape_rewards(scores, invalid, RewardShaping(invalid_penalty=-3.0))
    assert raw.tolist() == [0.0, 1.0, 2.0, 100.0, -3.0]
    clipped = shape_rewards(scores, invalid, RewardShaping(clip=5.0))
    assert clipped.tolist() == [0.0, 1.0, 2.0, 5.0, -1.0]
    shaped = shape_rewards(scores, invalid, RewardShaping(whiten=True, clip=1.5, invalid_penalty=-2.0))
    valid = whiten(scores[:4])
    np.testing.assert_allclose(shaped[:4], np.clip(valid, -1.5, 1.5))
    assert shaped[4] == -2.0
    assert np.isfinite(shaped).all()


def test_shape_rewards_rejects_nan_scores_and_bad_options():
    with pytest.raises(ValueError, match="scores"):
        shape_rewards(np.array([np.nan]), np.array([False]), RewardShaping())
    # a NaN for an invalid item is never read
    assert shape_rewards(np.array([np.nan]), np.array([True]), RewardShaping()).tolist() == [-1.0]
    with pytest.raises(ValueError, match="clip"):
        RewardShaping(clip=0.0)
    with pytest.raises(ValueError, match="invalid_penalty"):
        RewardShaping(invalid_penalty=float("inf"))
    with pytest.raises(ValueError, match="max_chars"):
        RewardShaping(max_chars=0)


def test_invalid_reasons():
    texts = ["  ", "a fine new review", "x" * 30, "Great  MOVIE", "seen before", "ok"]
    reasons = invalid_reasons(
        texts,
        max_chars=20,
        in_context=[[], [], [], ["great movie", "other"], None, None],
        labeled=["Seen before."[:-1]],
    )
    assert reasons == ["empty", None, "too_long", "copy_in_context", "copy_labeled", None]
    with pytest.raises(ValueError, match="in_context"):
        invalid_reasons(["a"], in_context=[[], []])


def test_completion_text_plain_and_conversational():
    assert completion_text("  hi ") == "hi"
    assert completion_text([{"role": "assistant", "content": " hi "}]) == "hi"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    with pytest.raises(ValueError, match="completions"):
        completion_text([{"role": "assistant"}])


def test_reward_function_trl_signature_plain_and_conversational():
    scorer = LengthScorer(labeled_texts=["a labeled text"])
    reward = get_signal_reward(scorer, RewardShaping(max_chars=40, invalid_penalty=-5.0))
    assert reward.__name__ == "signal_reward"
    prompts = ["Write a review."] * 5
    plain = ["one two three", "", "A labeled  TEXT", "copy me", "w " * 30]
    logged = {}
    out = reward(prompts=prompts, completions=plain, in_context=[[], [], [], ["copy me"], []],
                 trainer_state=None, log_metric=logged.__setitem__, completion_ids=[[1]] * 5)
    assert out == [3.0, -5.0, -5.0, -5.0, -5.0]
    assert scorer.calls == [["one two three"]]  # invalid generations are never scored
    assert logged["signal/invalid_fraction"] == pytest.approx(0.8)
    conversational = [[{"role": "assistant", "content": t}] for t in plain]
    assert reward(prompts, conversational, in_context=[[], [], [], ["copy me"], []]) == out
    assert all(isinstance(r, float) for r in out)


def test_reward_function_is_picklable_and_handles_all_invalid():
    reward = get_signal_reward(LengthScorer(), RewardShaping(whiten=True))
    clone = pickle.loads(pickle.dumps(reward))
    assert clone(["p", "p"], ["", " "]) == [-1.0, -1.0]
    assert clone(["p", "p", "p"], ["a", "a b", "a b c"]) == pytest.approx(whiten(np.array([1.0, 2.0, 3.0])).tolist())
    with pytest.raises(ValueError, match="completions"):
        clone(["p"], ["a", "b"])


def test_reward_copies_allowed_when_disabled():
    reward = get_signal_reward(LengthScorer(["same text"]), RewardShaping(penalize_copies=False))
    assert reward(["p"], ["same text"]) == [2.0]


def test_doctests():
    import doctest

    import signal_al.rewards.relevance
    import signal_al.rewards.score
    import signal_al.rewards.shaping
    import signal_al.rewards.trl_reward
    import signal_al.strategies

    for module in (signal_al.rewards.trl_reward, signal_al.rewards.shaping, signal_al.strategies,
                   signal_al.rewards.relevance, signal_al.rewards.score):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_rl_dataset_whitens_the_kept_scores_and_penalises_the_dropped_in_std_units():
    from signal_al.engine.generator.round import rl_dataset, synthetic_id
    from signal_al.generation.records import Candidate

    rng = np.random.default_rng(3)
    kept = [True, False, True, True, False, True]
    candidates = [Candidate(prompt="p", prompt_text="p", raw_output=f"o{i}", text=f"text {i}" if k else None,
                            drop_reason=None if k else "empty", prompt_token_ids=[1, 2], completion_token_ids=[3, i + 4])
                  for i, k in enumerate(kept)]
    raw = {synthetic_id(1, i): float(rng.random() * 1e-3) for i, k in enumerate(kept) if k}
    rollouts = rl_dataset(candidates, raw, 1, -2.0, whiten_kept=True)
    values = np.array(list(raw.values()), dtype=np.float64)
    expected = iter((values - values.mean()) / values.std())
    for rollout, k in zip(rollouts, kept):
        assert rollout.reward == (pytest.approx(next(expected)) if k else -2.0)
    plain = rl_dataset(candidates, raw, 1, -2.0)
    assert [r.reward for r in plain if r.metadata["kept"]] == pytest.approx(list(raw.values()))


def test_rl_dataset_penalises_gated_candidates_and_whitens_only_the_informative_ones():
    from signal_al.engine.generator.round import rl_dataset, synthetic_id
    from signal_al.generation.records import Candidate

    kept = [True, True, False, True, True]
    candidates = [Candidate(prompt="p", prompt_text="p", raw_output=f"o{i}", text=f"text {i}" if k else None,
                            drop_reason=None if k else "empty", prompt_token_ids=[1, 2], completion_token_ids=[3, i + 4])
                  for i, k in enumerate(kept)]
    # candidate 1 was gated by reward.relevance (score exactly 0)
    raw = {synthetic_id(2, 0): 0.3, synthetic_id(2, 1): 0.0, synthetic_id(2, 3): 0.1, synthetic_id(2, 4): 0.5}
    plain = rl_dataset(candidates, raw, 2, -1.0)
    assert [r.reward for r in plain] == [0.3, 0.0, -1.0, 0.1, 0.5]  # without gated_penalty a gated 0 stays 0
    gated = rl_dataset(candidates, raw, 2, -1.0, gated_penalty=-0.4)
    assert [r.reward for r in gated] == [0.3, -0.4, -1.0, 0.1, 0.5]
    whitened = rl_dataset(candidates, raw, 2, -2.0, whiten_kept=True, gated_penalty=-3.0)
    informative = np.array([0.3, 0.1, 0.5])  # the gated 0 is not part of the whitening statistics
    z = (informative - informative.mean()) / informative.std()
    assert [r.reward for r in whitened] == pytest.approx([z[0], -3.0, -2.0, z[1], z[2]])


def test_reward_gated_penalty_must_be_finite():
    from signal_al.core.config_io import ConfigError
    from signal_al.rewards import RewardConfig

    with pytest.raises(ConfigError, match="reward.gated_penalty"):
        RewardConfig(gated_penalty=float("inf"))
    with pytest.raises(ValueError, match="gated_penalty"):
        RewardShaping(gated_penalty=float("nan"))
