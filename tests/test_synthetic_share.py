"""The real -> synthetic budget schedule against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from signal_al.config import ActiveLearningConfig
from signal_al.core.errors import ConfigError
from signal_al.strategies.synthetic_share import scheduled_share, split_top_indices, synthetic_slots


def test_schedule_is_linear_from_the_first_generating_round_to_the_last() -> None:
    rounds_total = 11  # round 0 = seed set, rounds 1..10 generate
    shares = [scheduled_share(r, rounds_total, [0.2, 0.9]) for r in range(1, rounds_total)]
    np.testing.assert_allclose(shares, np.linspace(0.2, 0.9, rounds_total - 1), atol=1e-12)
    assert scheduled_share(1, 2, [0.3, 1.0]) == pytest.approx(0.3)  # one generating round: the start value
    assert scheduled_share(50, rounds_total, [0.2, 0.9]) == pytest.approx(0.9)  # past the end: clamped


def test_slots_are_the_feasible_count_closest_to_the_share() -> None:
    for budget, n_real, n_syn in itertools.product(range(0, 7), range(0, 7), range(0, 7)):
        if budget > n_real + n_syn:
            with pytest.raises(ValueError, match="exceeds"):
                synthetic_slots(budget, 0.5, n_real, n_syn)
            continue
        for share in (0.0, 0.1, 0.25, 0.5, 0.74, 1.0):
            feasible = [v for v in range(0, budget + 1) if v <= n_syn and budget - v <= n_real]
            wanted = share * budget
            best = min(feasible, key=lambda v: (abs(v - wanted), -v))  # ties: more synthetic (half-up)
            assert synthetic_slots(budget, share, n_real, n_syn) == best, (budget, share, n_real, n_syn)


def test_split_takes_the_top_items_of_each_side() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 30))
        scores = rng.normal(size=n)
        synthetic = rng.random(n) < 0.4
        budget = int(rng.integers(0, n + 1))
        share = float(rng.random())
        chosen = split_top_indices(scores, synthetic, budget, share, np.random.default_rng(trial))
        n_syn = synthetic_slots(budget, share, int((~synthetic).sum()), int(synthetic.sum()))
        order = np.argsort(-scores, kind="stable")
        expected_syn = [i for i in order if synthetic[i]][:n_syn]
        expected_real = [i for i in order if not synthetic[i]][:budget - n_syn]
        assert chosen.tolist() == expected_syn + expected_real
        assert len(set(chosen.tolist())) == budget


def test_schedule_validation_names_the_key() -> None:
    for bad in ([0.5], [0.2, 1.5], [-0.1, 0.5], [0.1, 0.2, 0.3]):
        with pytest.raises(ConfigError, match="active_learning.synthetic_share"):
            ActiveLearningConfig(synthetic_share=bad)
    assert ActiveLearningConfig(synthetic_share=[0.0, 1.0]).synthetic_share == [0.0, 1.0]
