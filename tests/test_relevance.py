"""reward.relevance and offdist_flags against float64 brute force and hand computations, and the
one-function rule: the strategy, the config mapping and the public signal_scores give equal numbers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from signal_al.core.errors import ConfigError
from signal_al.rewards import (RewardConfig, ScoreParams, knn_mean_distances, offdist_flags, relevance_factors,
                               relevance_reference, score_params, signal_scores)
from signal_al.strategies import PoolView, Selection, build_strategy, get_strategy
from signal_al.strategies.signal_sampling import reference_distances
from test_rewards import random_inputs, ref_scores


# --------------------------------------------------------------------------- references
def ref_mean_distances(e, el, k):
    """Mean Euclidean distance to the k nearest rows of el, after L2 normalisation, in float64."""
    e = np.asarray(e, np.float64)
    el = np.asarray(el, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    el = el / np.linalg.norm(el, axis=1, keepdims=True)
    d = np.sqrt(((e[:, None, :] - el[None, :, :]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, : min(k, len(el))].mean(axis=1)


def ref_quantile(values, q):
    """Linear-interpolation quantile by hand (numpy's default method)."""
    v = np.sort(np.asarray(values, np.float64))
    pos = q * (len(v) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def ref_gate(d, reference, q, two_sided):
    high = ref_quantile(reference, q)
    low = ref_quantile(reference, 1 - q) if two_sided else -np.inf
    return np.array([1.0 if low <= x <= high else 0.0 for x in d])


# --------------------------------------------------------------------------- pure functions
def test_flags_and_factors_by_hand():
    ref = np.array([0.5, 0.1, 0.3, 0.9, 0.7])  # sorted: 0.1 0.3 0.5 0.7 0.9
    # q = 0.75: position 3.0 -> 0.7; 1 - q = 0.25: position 1.0 -> 0.3
    d = np.array([0.05, 0.3, 0.69, 0.7, 0.71, 2.0])
    np.testing.assert_array_equal(offdist_flags(d, ref, quantile=0.75), [False, False, False, False, True, True])
    np.testing.assert_array_equal(offdist_flags(d, ref, quantile=0.75, two_sided=True),
                                  [True, False, False, False, True, True])
    np.testing.assert_array_equal(relevance_factors(d, ref, mode="quantile", quantile=0.75), [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(relevance_factors(d, ref, mode="typical", quantile=0.75), [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(relevance_factors(d, None, mode="none"), np.ones(6))
    # q = 0.9 interpolates: position 3.6 -> 0.7 + 0.6 * 0.2 = 0.82
    assert offdist_flags(np.array([0.8199, 0.8201]), ref, quantile=0.9).tolist() == [False, True]
    # q = 1: nothing beyond the farthest real text is real-looking; two-sided keeps [min, max]
    np.testing.assert_array_equal(offdist_flags(np.array([0.1, 0.9, 0.91]), ref, quantile=1.0, two_sided=True),
                                  [False, False, True])


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("q", [0.5, 0.8, 0.95, 1.0])
def test_factors_match_the_reference_gate_on_random_distances(q, two_sided):
    rng = np.random.default_rng(int(q * 100))
    ref, d = rng.gamma(4.0, 0.2, 301), rng.gamma(4.0, 0.2, 500)
    mode = "typical" if two_sided else "quantile"
    np.testing.assert_array_equal(relevance_factors(d, ref, mode=mode, quantile=q), ref_gate(d, ref, q, two_sided))
    # about 1 - q of the reference itself is flagged (twice that two-sided)
    share = offdist_flags(ref, ref, quantile=q, two_sided=two_sided).mean()
    assert share <= (1 - q) * (2 if two_sided else 1) + 2 / len(ref)


def test_bad_arguments_name_the_argument():
    ref = np.array([0.2, 0.4])
    with pytest.raises(ValueError, match="relevance: must be one of"):
        relevance_factors(np.array([0.1]), ref, mode="soft")
    with pytest.raises(ValueError, match="relevance_quantile"):
        offdist_flags(np.array([0.1]), ref, quantile=0.3)
    with pytest.raises(ValueError, match="reference_distances: empty"):
        offdist_flags(np.array([0.1]), np.zeros(0))
    with pytest.raises(ValueError, match="reference_distances: relevance='quantile' needs"):
        relevance_factors(np.array([0.1]), None, mode="quantile")
    with pytest.raises(ValueError, match="distances: distances must be finite"):
        offdist_flags(np.array([np.nan]), ref)
    with pytest.raises(ValueError, match="reference_distances: relevance='typical' needs"):
        pu, eu, pl, el = random_inputs(np.random.default_rng(0), n_u=3, n_l=4)
        signal_scores(pu, eu, pl, el, relevance="typical")


def test_config_keys_are_checked():
    with pytest.raises(ConfigError, match=r"reward\.relevance_quantile"):
        RewardConfig(relevance_quantile=0.2)
    with pytest.raises(ConfigError, match=r"reward\.relevance"):
        RewardConfig(relevance="soft")


def test_knn_mean_distances_match_bruteforce():
    rng = np.random.default_rng(1)
    e, el = rng.standard_normal((40, 7)), rng.standard_normal((12, 7))
    for k in (1, 5, 30):
        np.testing.assert_allclose(knn_mean_distances(e, el, k=k), ref_mean_distances(e, el, k), rtol=1e-5)


# --------------------------------------------------------------------------- the score
@pytest.mark.parametrize("mode", ["quantile", "typical"])
def test_gated_score_matches_bruteforce(mode):
    rng = np.random.default_rng(7)
    pu, eu, pl, el = random_inputs(rng, n_u=80, n_l=20)
    e_real = rng.standard_normal((50, 8))
    reference = ref_mean_distances(e_real, el, 5)
    got = signal_scores(pu, eu, pl, el, k=5, relevance=mode, relevance_quantile=0.8,
                        reference_distances=reference, chunk_size=17)
    paper, _, dist = ref_scores(pu, eu, pl, el, k=5)
    want = paper * ref_gate(dist.mean(axis=1), reference, 0.8, mode == "typical")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert 0 < (want == 0).sum() < len(want)  # the gate did something, but not everything


def test_relevance_none_gives_exactly_the_old_scores():
    pu, eu, pl, el = random_inputs(np.random.default_rng(3))
    old = signal_scores(pu, eu, pl, el, k=4)
    new = signal_scores(pu, eu, pl, el, RewardConfig(k=4), reference_distances=np.array([0.1]))
    np.testing.assert_array_equal(old, new)
    assert RewardConfig().relevance == "none"


# --------------------------------------------------------------------------- one function everywhere
def mixed_pool(seed=0, n=150, n_labeled=20, n_synthetic=40):
    """Real rows around one direction; synthetic rows half around the opposite one, half at the
    labeled rows' centre (closer to them than real rows are, like meta-commentary)."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, 8))
    emb[:, 0] += 3.0
    real = np.ones(n, dtype=bool)
    real[n - n_synthetic:] = False
    emb[n - n_synthetic: n - n_synthetic // 2, 0] -= 6.0
    emb[n - n_synthetic // 2:] = emb[:n_labeled].mean(axis=0) + 0.01 * rng.standard_normal((n_synthetic // 2, 8))
    probs = rng.dirichlet(np.ones(3), n)
    return PoolView(probs, np.arange(n_labeled), np.arange(n_labeled, n), emb, real=real)


@pytest.mark.parametrize("relevance", ["none", "quantile", "typical"])
def test_strategy_score_equals_the_public_function(relevance):
    view = mixed_pool()
    config = RewardConfig(k=6, kl_direction="reverse", relevance=relevance, relevance_quantile=0.9)
    strategy = build_strategy("signal", config)
    u, lab = view.unlabeled, view.labeled
    real_u = u[view.real[u]]
    reference = knn_mean_distances(view.embeddings[real_u], view.embeddings[lab], k=6)
    public = signal_scores(view.probs[u], view.embeddings[u], view.probs[lab], view.embeddings[lab],
                           config, reference_distances=reference)
    selection = strategy.select(view, 10, 0)
    np.testing.assert_array_equal(selection.scores, public)
    np.testing.assert_array_equal(strategy.score(view), public)
    if relevance != "none":
        syn = ~view.real[u]
        gated = public[syn] == 0
        assert gated[:20].all() and gated[20:].all() == (relevance == "typical")  # far rows; central ones
        assert (public[~syn] == 0).mean() <= (0.2 if relevance == "typical" else 0.1)
        np.testing.assert_array_equal(reference_distances(view, k=6), reference)


def test_reference_falls_back_to_real_labeled_rows_leave_one_out():
    view = mixed_pool()
    only_synthetic = PoolView(view.probs, view.labeled, view.unlabeled[~view.real[view.unlabeled]],
                              view.embeddings, real=view.real)
    el = view.embeddings[view.labeled]
    want = []
    for i in range(len(el)):  # each labeled row against the other labeled rows
        want.append(ref_mean_distances(el[i:i + 1], np.delete(el, i, axis=0), 6)[0])
    np.testing.assert_allclose(reference_distances(only_synthetic, k=6), want, rtol=1e-5)


def test_relevance_reference_is_the_real_unlabeled_rows_else_the_real_labeled_ones():
    real = np.array([True, True, False, True, False])
    labeled = np.array([True, False, False, False, True])
    rows, labeled_fallback = relevance_reference(real, labeled)
    assert rows.tolist() == [1, 3] and not labeled_fallback
    rows, labeled_fallback = relevance_reference(real, real | labeled)  # every real row labeled
    assert rows.tolist() == [0, 1, 3] and labeled_fallback
    with pytest.raises(ValueError, match="labeled"):
        relevance_reference(real, labeled[:2])


def test_build_strategy_is_the_one_mapping():
    config = RewardConfig(k=3, kl_direction="reverse", eps=1e-4, normalize=False, approximate=True,
                          relevance="typical", relevance_quantile=0.8)
    assert build_strategy("signal", config).params == score_params(config)
    assert build_strategy("signal").params == score_params(RewardConfig()) == ScoreParams()
    assert dataclasses.asdict(score_params(config)) == {f.name: getattr(config, f.name)
                                                        for f in dataclasses.fields(ScoreParams)}
    assert build_strategy("entropy", config).name == "entropy"
    with pytest.raises(ValueError, match="relevance: must be one of"):
        get_strategy("signal", relevance="soft")


# --------------------------------------------------------------------------- select
def test_select_keeps_query_and_exposes_scores():
    view = mixed_pool(n_synthetic=0)
    for name in ("entropy", "signal", "random"):
        strategy = get_strategy(name)
        sel = strategy.select(view, 7, np.random.default_rng(5))
        assert isinstance(sel, Selection)
        np.testing.assert_array_equal(sel.indices, strategy.query(view, 7, np.random.default_rng(5)))
        np.testing.assert_array_equal(sel.scores, strategy.score(view, 7, np.random.default_rng(5)))
        order = np.argsort(-sel.scores, kind="stable")[:7]  # no exact ties in these float scores
        np.testing.assert_array_equal(sel.indices, view.unlabeled[order])
    sel = get_strategy("coreset").select(view, 5, 0)
    assert sel.scores is None
    np.testing.assert_array_equal(sel.indices, get_strategy("coreset").query(view, 5, 0))
    with pytest.raises(ValueError, match="synthetic_share: the 'coreset' strategy does not rank"):
        get_strategy("coreset").select(view, 5, 0, synthetic_share=0.5)


def test_select_with_a_synthetic_share_takes_the_top_of_each_side():
    view = mixed_pool()
    strategy = get_strategy("entropy")
    synthetic = ~view.real[view.unlabeled]
    sel = strategy.select(view, 10, 0, synthetic=synthetic, synthetic_share=0.3)
    scores = sel.scores
    syn_pos, real_pos = np.flatnonzero(synthetic), np.flatnonzero(~synthetic)
    want_syn = view.unlabeled[syn_pos[np.argsort(-scores[syn_pos], kind="stable")[:3]]]
    want_real = view.unlabeled[real_pos[np.argsort(-scores[real_pos], kind="stable")[:7]]]
    np.testing.assert_array_equal(sel.indices, np.concatenate([want_syn, want_real]))
    # the mask defaults to the rows PoolView.real marks synthetic
    np.testing.assert_array_equal(strategy.select(view, 10, 0, synthetic_share=0.3).indices, sel.indices)
    with pytest.raises(ValueError, match="synthetic: expected"):
        strategy.select(view, 10, 0, synthetic=synthetic[:-1], synthetic_share=0.3)


def test_pool_view_checks_real():
    view = mixed_pool()
    with pytest.raises(ValueError, match="real: expected 150 booleans"):
        PoolView(view.probs, view.labeled, view.unlabeled, view.embeddings, real=np.ones(150, dtype=int))
