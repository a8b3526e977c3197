"""signal_scores and the kNN index against independent float64 brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from signal_al.neighbors.knn import LabeledIndex, faiss_gpu_available
from signal_al.rewards import SignalScores, signal_scores

FLOOR = 1e-12  # probability floor inside the log (documented in signal_al.neighbors.divergence)


# --------------------------------------------------------------------------- references
def ref_kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in float64 with 0·log 0 = 0 and q floored at FLOOR inside the log."""
    total = 0.0
    for pc, qc in zip(p, q):
        if pc > 0:
            total += pc * (np.log(max(pc, FLOOR)) - np.log(max(qc, FLOOR)))
    return max(total, 0.0)


def ref_scores(pu, eu, pl, el, *, k=10, kl_direction="forward", eps=1e-6, normalize=True):
    """Loop-per-row brute force: scores, neighbour indices and distances."""
    pu, eu, pl, el = (np.asarray(a, dtype=np.float64) for a in (pu, eu, pl, el))
    if normalize:
        nu = np.linalg.norm(eu, axis=1, keepdims=True)
        nl = np.linalg.norm(el, axis=1, keepdims=True)
        eu = eu / np.where(nu == 0, 1, nu)
        el = el / np.where(nl == 0, 1, nl)
    kk = min(k, len(pl))
    scores, nbrs, dists = [], [], []
    for i in range(len(pu)):
        d = np.sqrt(((el - eu[i]) ** 2).sum(axis=1))
        nn = np.argsort(d, kind="stable")[:kk]
        terms = []
        for j in nn:
            kl = ref_kl(pu[i], pl[j]) if kl_direction == "forward" else ref_kl(pl[j], pu[i])
            terms.append(kl / max(d[j], eps))
        scores.append(np.mean(terms))
        nbrs.append(nn)
        dists.append(d[nn])
    return np.array(scores), np.array(nbrs), np.array(dists)


def random_inputs(rng, n_u=60, n_l=25, dim=8, n_classes=3, concentration=1.0):
    pu = rng.dirichlet(np.full(n_classes, concentration), n_u)
    pl = rng.dirichlet(np.full(n_classes, concentration), n_l)
    eu = rng.standard_normal((n_u, dim))
    el = rng.standard_normal((n_l, dim))
    return pu, eu, pl, el


# --------------------------------------------------------------------------- random inputs
@pytest.mark.parametrize("kl_direction", ["forward", "reverse"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_matches_bruteforce_on_random_inputs(kl_direction, normalize, k):
    rng = np.random.default_rng(k)
    pu, eu, pl, el = random_inputs(rng)
    got = signal_scores(pu, eu, pl, el, k=k, kl_direction=kl_direction, normalize=normalize, return_neighbors=True)
    want, nbr, dist = ref_scores(pu, eu, pl, el, k=k, kl_direction=kl_direction, normalize=normalize)
    assert isinstance(got, SignalScores)
    assert got.scores.dtype == np.float64 and got.scores.shape == (len(pu),)
    np.testing.assert_array_equal(got.neighbors, nbr)
    np.testing.assert_allclose(got.distances, dist, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.scores, want, rtol=1e-5)


def test_directions_differ_and_each_matches_its_definition():
    rng = np.random.default_rng(1)
    pu, eu, pl, el = random_inputs(rng, concentration=0.3)
    fwd = signal_scores(pu, eu, pl, el, k=3, kl_direction="forward")
    rev = signal_scores(pu, eu, pl, el, k=3, kl_direction="reverse")
    assert not np.allclose(fwd, rev)
    np.testing.assert_allclose(fwd, ref_scores(pu, eu, pl, el, k=3, kl_direction="forward")[0], rtol=1e-5)
    np.testing.assert_allclose(rev, ref_scores(pu, eu, pl, el, k=3, kl_direction="reverse")[0], rtol=1e-5)


def test_float32_inputs_and_chunking_give_the_same_scores():
    rng = np.random.default_rng(2)
    pu, eu, pl, el = random_inputs(rng, n_u=101)
    full = signal_scores(pu, eu, pl, el, k=4)
    chunked = signal_scores(pu.astype(np.float32), eu.astype(np.float32), pl, el, k=4, chunk_size=7)
    np.testing.assert_allclose(chunked, full, rtol=1e-6)


def test_deterministic_for_the_same_inputs():
    rng = np.random.default_rng(3)
    pu, eu, pl, el = random_inputs(rng, n_u=200, n_l=80)
    a = signal_scores(pu, eu, pl, el, return_neighbors=True)
    b = signal_scores(pu, eu, pl, el, return_neighbors=True)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- hand-built cases
def test_paper_figure_1_nearer_of_two_equally_contrastive_points_scores_higher():
    """Two unlabeled points with the same prediction and the same labeled neighbour: equal KL,
    so the score is KL/d and the nearer one wins."""
    pl = np.array([[0.9, 0.1]])
    el = np.array([[0.0, 0.0]])
    pu = np.array([[0.2, 0.8], [0.2, 0.8]])
    eu = np.array([[0.1, 0.0], [0.0, 0.5]])
    s = signal_scores(pu, eu, pl, el, k=1, normalize=False)
    kl = 0.2 * np.log(0.2 / 0.9) + 0.8 * np.log(0.8 / 0.1)
    np.testing.assert_allclose(s, [kl / 0.1, kl / 0.5], rtol=1e-6)
    assert s[0] > s[1]


def test_agreeing_neighbours_score_zero_and_contrastive_ones_score_high():
    pl = np.array([[0.95, 0.05], [0.05, 0.95]])
    el = np.array([[1.0, 0.0], [0.0, 1.0]])
    pu = np.array([[0.95, 0.05], [0.05, 0.95]])
    eu = np.array([[0.9, 0.1], [0.9, 0.1]])  # both next to labeled row 0
    s = signal_scores(pu, eu, pl, el, k=1)
    assert s[0] == pytest.approx(0.0, abs=1e-12)
    assert s[1] > 1.0


def test_k_larger_than_labeled_set_uses_all_labeled_rows():
    rng = np.random.default_rng(4)
    pu, eu, pl, el = random_inputs(rng, n_u=10, n_l=3)
    got = signal_scores(pu, eu, pl, el, k=50, return_neighbors=True)
    assert got.neighbors.shape == (10, 3)
    assert all(sorted(row) == [0, 1, 2] for row in got.neighbors.tolist())
    np.testing.assert_allclose(got.scores, ref_scores(pu, eu, pl, el, k=50)[0], rtol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_duplicates_of_labeled_points_are_finite_and_exact(normalize):
    rng = np.random.default_rng(5)
    pu, eu, pl, el = random_inputs(rng, n_u=6, n_l=5, dim=4)
    eu[0] = el[2]  # same text: same embedding and same prediction
    pu[0] = pl[2]
    eu[1] = el[3]  # same embedding, different prediction: distance 0 -> eps floor
    pl = np.vstack([pl, pl[4]])  # a labeled duplicate too
    el = np.vstack([el, el[4]])
    got = signal_scores(pu, eu, pl, el, k=1, eps=1e-6, normalize=normalize, return_neighbors=True)
    want, _, _ = ref_scores(pu, eu, pl, el, k=1, eps=1e-6, normalize=normalize)
    assert np.isfinite(got.scores).all()
    assert got.distances[0, 0] == 0.0 and got.distances[1, 0] == 0.0
    assert got.scores[0] == 0.0
    np.testing.assert_allclose(got.scores[1], ref_kl(pu[1], pl[3]) / 1e-6, rtol=1e-9)
    np.testing.assert_allclose(got.scores, want, rtol=1e-5)


def test_one_hot_probabilities_stay_finite():
    pl = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    el = np.array([[1.0, 0.0], [0.0, 1.0]])
    pu = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    eu = np.array([[1.0, 0.0], [1.0, 0.0], [0.7, 0.7]])
    for direction in ("forward", "reverse"):
        got = signal_scores(pu, eu, pl, el, k=2, kl_direction=direction)
        want = ref_scores(pu, eu, pl, el, k=2, kl_direction=direction)[0]
        assert np.isfinite(got).all() and (got >= 0).all()
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # KL(onehot_a ‖ onehot_b) is -log(FLOOR), not inf
    got = signal_scores(pu[:1], eu[:1], pl[:1], el[:1], k=1, normalize=False)
    np.testing.assert_allclose(got, [-np.log(FLOOR) / 1e-6])


def test_zero_embeddings_do_not_produce_nan():
    pu = np.array([[0.5, 0.5], [0.9, 0.1]])
    eu = np.zeros((2, 3))
    pl = np.array([[0.1, 0.9]])
    el = np.zeros((1, 3))
    s = signal_scores(pu, eu, pl, el, k=1)
    assert np.isfinite(s).all()


def test_empty_unlabeled_set_returns_empty_scores():
    s = signal_scores(np.zeros((0, 2)), np.zeros((0, 4)), np.array([[0.5, 0.5]]), np.ones((1, 4)))
    assert s.shape == (0,)


def test_prebuilt_index_is_reused():
    rng = np.random.default_rng(6)
    pu, eu, pl, el = random_inputs(rng)
    unit = el / np.linalg.norm(el, axis=1, keepdims=True)
    index = LabeledIndex(unit)
    np.testing.assert_allclose(
        signal_scores(pu, eu, pl, None, k=3, index=index), signal_scores(pu, eu, pl, el, k=3), rtol=1e-6
    )


# --------------------------------------------------------------------------- approximate index
def clustered(rng, n, centres, spread=0.05):
    z = rng.integers(0, len(centres), n)
    return centres[z] + spread * rng.standard_normal((n, centres.shape[1]))


def test_approximate_index_recall_and_rank_agreement():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, 16))
    el = clustered(rng, 3000, centres)
    eu = clustered(rng, 500, centres)
    pl = rng.dirichlet(np.ones(4), len(el))
    pu = rng.dirichlet(np.ones(4), len(eu))
    exact = signal_scores(pu, eu, pl, el, return_neighbors=True)
    approx = signal_scores(pu, eu, pl, el, return_neighbors=True, approximate=True)
    recall = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact.neighbors, approx.neighbors)])
    assert recall >= 0.95
    assert spearmanr(exact.scores, approx.scores).statistic >= 0.99
    assert np.isfinite(approx.scores).all()


def test_index_returns_sorted_euclidean_distances_and_caps_k():
    rng = np.random.default_rng(8)
    data = rng.standard_normal((30, 5))
    queries = rng.standard_normal((7, 5))
    dist, idx = LabeledIndex(data).search(queries, 40, chunk_size=3)
    assert dist.shape == idx.shape == (7, 30)
    assert (np.diff(dist, axis=1) >= 0).all()
    ref = np.sqrt(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(dist, np.sort(ref, axis=1), rtol=1e-5)


@pytest.mark.parametrize("unit", [True, False])
def test_large_query_sets_take_the_threaded_path_and_stay_exact(unit):
    """Enough queries to split the search over threads; compare with a float64 brute force."""
    from signal_al.neighbors.knn import threaded_search

    rng = np.random.default_rng(10)
    data = rng.standard_normal((300, 16))
    queries = rng.standard_normal((5000, 16))
    if unit:
        data /= np.linalg.norm(data, axis=1, keepdims=True)
    dist, idx = LabeledIndex(data).search(queries, 5)
    ref = np.sqrt(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1))
    want = np.sort(ref, axis=1)[:, :5]
    np.testing.assert_allclose(dist, want, rtol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(ref, idx, axis=1), want, rtol=1e-5)  # the right rows
    index = LabeledIndex(data).index
    q32 = queries.astype(np.float32)
    np.testing.assert_allclose(threaded_search(index, q32, 5)[0], index.search(q32, 5)[0], rtol=1e-5, atol=1e-5)


def test_gpu_request_without_gpu_support_is_a_clear_error():
    if faiss_gpu_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(ValueError, match="use_gpu"):
        LabeledIndex(np.ones((3, 2)), use_gpu=True)


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def good():
    rng = np.random.default_rng(9)
    return dict(zip(("probs_u", "emb_u", "probs_l", "emb_l"), random_inputs(rng, n_u=5, n_l=4, dim=3)))


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda g: g.update(probs_u=g["probs_u"][:, :2] / g["probs_u"][:, :2].sum(1, keepdims=True)), "probs_l"),
        (lambda g: g.update(probs_u=g["probs_u"][0]), "probs_u"),
        (lambda g: g.update(probs_u=g["probs_u"] * 2), "probs_u"),
        (lambda g: g.update(probs_l=np.abs(g["probs_l"]) * np.array([1, 1, -1])), "probs_l"),
        (lambda g: g.update(probs_l=np.full((4, 3), np.nan)), "probs_l"),
        (lambda g: g.update(emb_u=g["emb_u"][:3]), "emb_u"),
        (lambda g: g.update(emb_l=g["emb_l"][:, :2]), "emb_l"),
        (lambda g: g.update(emb_l=g["emb_l"][:3]), "emb_l"),
        (lambda g: g["emb_u"].__setitem__((0, 0), np.inf), "emb_u"),
        (lambda g: g.update(emb_l=np.zeros(4)), "emb_l"),
        (lambda g: g.update(probs_l=np.zeros((0, 3)), emb_l=np.zeros((0, 3))), "probs_l"),
        (lambda g: g.update(probs_u=np.array([["a", "b", "c"]] * 5)), "probs_u"),
    ],
)
def test_invalid_arrays_name_the_argument(good, change, name):
    change(good)
    with pytest.raises(ValueError, match=name):
        signal_scores(**good)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"k": 0}, "k"), ({"k": 2.5}, "k"), ({"eps": 0.0}, "eps"), ({"eps": float("nan")}, "eps"),
     ({"kl_direction": "both"}, "kl_direction"), ({"chunk_size": 0}, "chunk_size")],
)
def test_invalid_parameters_name_the_argument(good, kwargs, name):
    with pytest.raises(ValueError, match=name):
        signal_scores(**good, **kwargs)
