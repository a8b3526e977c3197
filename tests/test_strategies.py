"""Selection strategies on hand-made pools where the right answer is known, plus references."""

from __future__ import annotations

import numpy as np
import pytest

from signal_al.core.errors import ConfigError
from signal_al.rewards import signal_scores
from signal_al.strategies import STRATEGIES, PoolView, get_strategy, predictive_entropy
from signal_al.strategies.badge import gradient_factors

ALL = sorted(STRATEGIES)


def random_pool(seed=0, n=120, n_labeled=15, n_classes=3, dim=6):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_classes) * 0.7, n)
    emb = rng.standard_normal((n, dim))
    perm = rng.permutation(n)
    labels = rng.integers(0, n_classes, n)
    return PoolView(probs, perm[:n_labeled], perm[n_labeled:], emb, labels)


# --------------------------------------------------------------------------- shared contract
@pytest.mark.parametrize("name", ALL)
def test_contract_subset_unique_deterministic(name):
    pool = random_pool()
    strategy = get_strategy(name)
    picked = strategy.query(pool, 12, np.random.default_rng(3))
    assert picked.dtype == np.int64 and len(picked) == 12 and len(set(picked.tolist())) == 12
    assert set(picked.tolist()) <= set(pool.unlabeled.tolist())
    np.testing.assert_array_equal(picked, strategy.query(pool, 12, np.random.default_rng(3)))
    np.testing.assert_array_equal(picked, strategy.query(pool, 12, 3))  # an int seed works too
    scores = strategy.score(pool, 12, np.random.default_rng(3))
    assert scores.shape == (len(pool.unlabeled),) and np.isfinite(scores).all()
    assert len(strategy.query(pool, 0, 0)) == 0


@pytest.mark.parametrize("name", ALL)
def test_budget_larger_than_pool_is_an_error(name):
    pool = random_pool(n=30, n_labeled=10)
    with pytest.raises(ValueError, match="budget"):
        get_strategy(name).query(pool, 21, 0)
    with pytest.raises(ValueError, match="budget"):
        get_strategy(name).query(pool, -1, 0)


@pytest.mark.parametrize("name", ALL)
def test_whole_pool_budget_returns_every_unlabeled_item(name):
    pool = random_pool(n=25, n_labeled=5)
    picked = get_strategy(name).query(pool, 20, 1)
    assert sorted(picked.tolist()) == sorted(pool.unlabeled.tolist())


def test_registry_and_config_errors():
    assert set(STRATEGIES) == {"random", "entropy", "bertkm", "badge", "cal", "coreset", "cluster", "qbc", "signal"}
    with pytest.raises(ConfigError, match="unknown strategy 'bald'"):
        get_strategy("bald")
    with pytest.raises(ValueError, match="bad parameters for 'cal'"):
        get_strategy("cal", neighbours=3)
    assert get_strategy("signal", k=3, kl_direction="reverse").params.kl_direction == "reverse"


def test_pool_view_validation_names_the_argument():
    probs = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="unlabeled"):
        PoolView(probs, np.array([0, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="labeled"):
        PoolView(probs, np.array([0, 7]), np.array([1, 2]))
    with pytest.raises(ValueError, match="embeddings"):
        PoolView(probs, np.array([0]), np.array([1]), embeddings=np.ones((3, 2)))
    with pytest.raises(ValueError, match="probs"):
        PoolView(np.ones((4, 2)), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="labels"):
        PoolView(probs, np.array([1]), np.array([0]), labels=np.array([0, 5, 0, 0]))
    pool = PoolView(probs, np.array([0]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="embeddings"):
        get_strategy("badge").query(pool, 1, 0)
    with pytest.raises(ValueError, match="labels"):
        get_strategy("qbc").query(PoolView(probs, np.array([0]), np.array([1, 2]), np.ones((4, 2))), 1, 0)
    with pytest.raises(ValueError, match="labeled"):
        get_strategy("cal").query(PoolView(probs, np.array([], dtype=int), np.arange(4), np.ones((4, 2))), 1, 0)


# --------------------------------------------------------------------------- random / entropy
def test_random_is_seeded_and_varies_with_the_seed():
    pool = random_pool(n=200)
    strategy = get_strategy("random")
    a, b = strategy.query(pool, 20, 1), strategy.query(pool, 20, 2)
    assert not np.array_equal(np.sort(a), np.sort(b))


def test_entropy_picks_the_most_uncertain_items():
    probs = np.array([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    pool = PoolView(probs, np.array([], dtype=int), np.arange(5))
    assert get_strategy("entropy").query(pool, 3, 0).tolist() == [1, 2, 3]
    np.testing.assert_allclose(predictive_entropy(probs)[[1, 4]], [np.log(3), 0.0])


def test_exact_ties_are_broken_by_the_seed():
    pool = PoolView(np.full((50, 2), 0.5), np.array([], dtype=int), np.arange(50))
    picks = {tuple(get_strategy("entropy").query(pool, 3, seed).tolist()) for seed in range(5)}
    assert len(picks) > 1


# --------------------------------------------------------------------------- bertkm
def blobs(rng, centres, per_blob, spread=0.05):
    """Blobs around ``centres`` with the blob's mean point exactly at the centre (item 0 of each)."""
    points = []
    for c in centres:
        offsets = spread * rng.standard_normal((per_blob - 1, len(c)))
        offsets = np.vstack([offsets, -offsets])[: per_blob - 1]  # symmetric so the mean is the centre
        points.append(np.vstack([c, c + offsets]))
    return np.vstack(points)


def test_bertkm_takes_the_central_item_of_each_blob():
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    emb = blobs(rng, centres, per_blob=9, spread=0.05)
    probs = np.full((len(emb), 2), 0.5)
    pool = PoolView(probs, np.array([], dtype=int), np.arange(len(emb)), emb)
    picked = get_strategy("bertkm").query(pool, 3, 0)
    # reference: in L2-normalised space, the member nearest its blob's mean
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    want = []
    for b in range(3):
        members = unit[9 * b : 9 * b + 9]
        want.append(9 * b + int(np.argmin(np.linalg.norm(members - members.mean(0), axis=1))))
    assert sorted(picked.tolist()) == want


def test_bertkm_score_needs_the_budget():
    with pytest.raises(ValueError, match="budget"):
        get_strategy("bertkm").score(random_pool())


def test_bertkm_with_duplicate_points_still_fills_the_budget():
    emb = np.repeat(np.eye(3), 4, axis=0)  # 3 distinct points, 12 items
    pool = PoolView(np.full((12, 2), 0.5), np.array([], dtype=int), np.arange(12), emb)
    with pytest.warns(Warning):  # sklearn: fewer distinct clusters than n_clusters
        picked = get_strategy("bertkm").query(pool, 5, 0)
    assert len(set(picked.tolist())) == 5
    assert {int(i) // 4 for i in picked} == {0, 1, 2}


# --------------------------------------------------------------------------- badge
def ref_gradient_embeddings(probs, emb):
    """Explicit (p − onehot(argmax p)) ⊗ h, flattened."""
    onehot = np.eye(probs.shape[1])[probs.argmax(axis=1)]
    return np.einsum("nc,nd->ncd", probs - onehot, emb).reshape(len(probs), -1)


def test_badge_binary_uses_one_minus_p_hat_for_the_predicted_class():
    """Binary pool: a confident item with a huge embedding vs an uncertain one. The real
    gradient of the confident item is tiny ((1 − 0.99)·|h|), so BADGE's first pick (largest
    gradient) is the uncertain item; dropping the (1 − p̂) term would pick the confident one."""
    probs = np.array([[0.99, 0.01], [0.5, 0.5], [0.9, 0.1]])
    emb = np.array([[10.0, 0.0], [0.0, 1.0], [0.0, 0.5]])
    pool = PoolView(probs, np.array([], dtype=int), np.arange(3), emb)
    assert gradient_factors(probs)[0].tolist() == pytest.approx([-0.01, 0.01])
    scores = get_strategy("badge").score(pool)
    np.testing.assert_allclose(scores, np.linalg.norm(ref_gradient_embeddings(probs, emb), axis=1))
    np.testing.assert_allclose(scores, [np.sqrt(2) * 0.01 * 10, np.sqrt(2) * 0.5, np.sqrt(2) * 0.1 * 0.5])
    assert get_strategy("badge").query(pool, 1, 0).tolist() == [1]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_badge_kmeanspp_never_picks_a_point_coinciding_with_a_centre(n_classes):
    """Two groups of identical gradient embeddings: after the first pick its whole group has
    D² = 0, so the second pick must come from the other group."""
    rng = np.random.default_rng(n_classes)
    p_a = rng.dirichlet(np.ones(n_classes))
    p_b = np.roll(p_a, 1)
    probs = np.vstack([np.tile(p_a, (5, 1)), np.tile(p_b, (5, 1))])
    emb = np.vstack([np.tile([1.0, 0.0], (5, 1)), np.tile([0.0, 2.0], (5, 1))])
    pool = PoolView(probs, np.array([], dtype=int), np.arange(10), emb)
    for seed in range(10):
        first, second = get_strategy("badge").query(pool, 2, seed).tolist()
        assert first >= 5  # group b has the larger gradient (|h| = 2)
        assert second < 5


def test_badge_distance_shortcut_matches_explicit_gradient_embeddings():
    """The D² sampling weights come from |g_i − g_j|² computed without building g; check the
    identity the implementation relies on against explicit outer products."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 20)
    emb = rng.standard_normal((20, 5))
    g = ref_gradient_embeddings(probs, emb)
    v = gradient_factors(probs)
    sq = (v**2).sum(1) * (emb**2).sum(1)
    shortcut = sq[:, None] + sq[None, :] - 2 * (v @ v.T) * (emb @ emb.T)
    explicit = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(shortcut, explicit, atol=1e-10)


def test_badge_with_all_zero_gradients_still_returns_distinct_items():
    probs = np.tile([1.0, 0.0], (6, 1))  # one-hot: every gradient is 0
    pool = PoolView(probs, np.array([], dtype=int), np.arange(6), np.ones((6, 3)))
    picked = get_strategy("badge").query(pool, 4, 0)
    assert len(set(picked.tolist())) == 4


# --------------------------------------------------------------------------- cal
def ref_cal(probs, emb, labeled, unlabeled, k, direction):
    out = []
    for i in unlabeled:
        d = np.linalg.norm(emb[labeled] - emb[i], axis=1)
        nn = labeled[np.argsort(d, kind="stable")[:k]]
        kls = []
        for j in nn:
            p, q = (probs[i], probs[j]) if direction == "forward" else (probs[j], probs[i])
            kls.append(sum(a * (np.log(max(a, 1e-12)) - np.log(max(b, 1e-12))) for a, b in zip(p, q) if a > 0))
        out.append(np.mean(kls))
    return np.array(out)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_cal_matches_reference_with_labeled_only_neighbours(direction):
    pool = random_pool(seed=4)
    scores = get_strategy("cal", k=4, kl_direction=direction).score(pool)
    want = ref_cal(pool.probs, pool.embeddings.astype(np.float64), pool.labeled, pool.unlabeled, 4, direction)
    np.testing.assert_allclose(scores, want, rtol=1e-5)


def test_cal_ignores_unlabeled_neighbours_and_distance():
    """Item 2 sits right next to an unlabeled item that disagrees with it; item 3 is far from
    everything but disagrees with its labeled neighbour. Labeled-only CAL ranks 3 first."""
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    emb = np.array([[0.0, 0.0], [5.0, 5.0], [5.0, 5.1], [-9.0, 0.0]])
    pool = PoolView(probs, np.array([0]), np.array([1, 2, 3]), emb)
    scores = get_strategy("cal", k=1).score(pool)
    assert scores[1] == pytest.approx(0.0, abs=1e-12)  # item 2 agrees with labeled item 0
    assert scores[0] == pytest.approx(scores[2])  # no distance weighting
    assert get_strategy("cal", k=1).query(pool, 1, 0).tolist() in ([1], [3])


# --------------------------------------------------------------------------- coreset
def ref_kcenter(emb, labeled, unlabeled, budget):
    chosen = []
    centres = list(labeled)
    for _ in range(budget):
        d = [min(np.linalg.norm(emb[i] - emb[c]) for c in centres) if centres else 0 for i in unlabeled]
        d = [-1 if i in chosen else x for i, x in zip(unlabeled, d)]
        best = unlabeled[int(np.argmax(d))]
        chosen.append(best)
        centres.append(best)
    return chosen


def test_coreset_on_a_line():
    emb = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    pool = PoolView(np.full((5, 2), 0.5), np.array([0]), np.array([1, 2, 3, 4]), emb)
    assert get_strategy("coreset").query(pool, 2, 0).tolist() == [4, 3]
    np.testing.assert_allclose(get_strategy("coreset").score(pool), [1, 2, 3, 10])


def test_coreset_matches_greedy_reference():
    pool = random_pool(seed=5, n=60, n_labeled=6)
    got = get_strategy("coreset").query(pool, 8, 0).tolist()
    assert got == ref_kcenter(pool.embeddings.astype(np.float64), pool.labeled.tolist(), pool.unlabeled.tolist(), 8)


def test_coreset_without_labeled_items_starts_at_random_then_spreads():
    emb = np.array([[0.0], [0.1], [10.0], [10.1]])
    pool = PoolView(np.full((4, 2), 0.5), np.array([], dtype=int), np.arange(4), emb)
    for seed in range(4):
        a, b = get_strategy("coreset").query(pool, 2, seed).tolist()
        assert (a < 2) != (b < 2)


# --------------------------------------------------------------------------- cluster
def test_cluster_takes_the_most_uncertain_items_of_each_cluster():
    rng = np.random.default_rng(1)
    emb = blobs(rng, np.array([[1.0, 0.0], [0.0, 1.0]]), per_blob=6, spread=0.02)
    # blob A (items 0-5) is uncertain, blob B (6-11) confident but with graded entropy
    p_a = np.linspace(0.5, 0.7, 6)
    p_b = np.linspace(0.80, 0.99, 6)
    probs = np.column_stack([np.r_[p_a, p_b], 1 - np.r_[p_a, p_b]])
    pool = PoolView(probs, np.array([], dtype=int), np.arange(12), emb)
    picked = get_strategy("cluster", n_clusters=2).query(pool, 4, 0).tolist()
    assert sorted(picked) == [0, 1, 6, 7]  # 2 per cluster, not the 4 most uncertain overall
    picked = get_strategy("cluster", n_clusters=2).query(pool, 3, 0).tolist()
    assert sorted(picked) == [0, 1, 6]  # the remainder goes to the cluster whose next item is most uncertain


def test_cluster_smaller_than_its_share_leaves_slots_to_the_others():
    emb = np.vstack([np.tile([1.0, 0.0], (6, 1)) + 0.01 * np.arange(6)[:, None], [[0.0, 1.0]]])
    probs = np.column_stack([np.linspace(0.5, 0.9, 7), 1 - np.linspace(0.5, 0.9, 7)])
    pool = PoolView(probs, np.array([], dtype=int), np.arange(7), emb)
    picked = get_strategy("cluster", n_clusters=2).query(pool, 4, 0).tolist()
    assert 6 in picked and sorted(picked) == [0, 1, 2, 6]


# --------------------------------------------------------------------------- qbc
def test_qbc_binary_is_the_std_of_neighbour_labels():
    emb = np.array([[0.0], [0.1], [0.2], [0.3], [10.0], [10.1], [10.2], [10.3], [0.15], [10.15]])
    labels = np.array([0, 1, 0, 1, 1, 1, 1, 1, -1, -1])
    probs = np.full((10, 2), 0.5)
    pool = PoolView(probs, np.arange(8), np.array([8, 9]), emb, labels)
    scores = get_strategy("qbc", k=4).score(pool)
    np.testing.assert_allclose(scores, [0.5, 0.0])
    assert get_strategy("qbc", k=4).query(pool, 1, 0).tolist() == [8]


def test_qbc_multiclass_uses_vote_entropy():
    emb = np.array([[0.0], [0.1], [0.2], [0.3], [0.15]])
    labels = np.array([0, 1, 2, 2, 0])
    pool = PoolView(np.full((5, 3), 1 / 3), np.arange(4), np.array([4]), emb, labels)
    shares = np.array([0.25, 0.25, 0.5])
    np.testing.assert_allclose(get_strategy("qbc", k=4).score(pool), [-(shares * np.log(shares)).sum()])


# --------------------------------------------------------------------------- signal
def test_signal_strategy_is_top_b_of_signal_scores():
    pool = random_pool(seed=6)
    u, lab = pool.unlabeled, pool.labeled
    scores = signal_scores(pool.probs[u], pool.embeddings[u], pool.probs[lab], pool.embeddings[lab], k=5)
    np.testing.assert_allclose(get_strategy("signal", k=5).score(pool), scores)
    picked = get_strategy("signal", k=5).query(pool, 7, 0)
    np.testing.assert_array_equal(picked, u[np.argsort(-scores, kind="stable")[:7]])
