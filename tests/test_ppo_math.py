"""The update's tensor maths against hand computations and float64 numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from signal_al.trainers.batches import group_shuffled_order, local_chunks
from signal_al.trainers.ppo_math import (gae, group_index, grpo_advantages, kl_penalty, masked_mean, masked_whiten,
                                         pool_singletons, ppo_loss, rloo_advantages, whiten)


def test_masked_mean_and_whiten_match_numpy():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, -2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    kept = np.array([1.0, 2.0, 3.0, 4.0, -2.0])
    assert float(masked_mean(x, mask)) == pytest.approx(kept.mean())
    w = masked_whiten(x, mask)
    expected = (kept - kept.mean()) / math.sqrt(kept.var(ddof=1) + 1e-8)
    np.testing.assert_allclose(w[mask.bool()].numpy(), expected, rtol=1e-5)
    shifted = masked_whiten(x, mask, shift_mean=False)
    np.testing.assert_allclose(shifted[mask.bool()].numpy(), expected + kept.mean(), rtol=1e-5)
    assert float(masked_mean(x, torch.zeros_like(mask))) == 0.0  # no tokens: no division by zero


def test_gae_matches_a_float64_loop():
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    gamma, lam = 0.9, 0.7
    expected = np.zeros_like(rewards)
    for row in range(3):
        for t in range(5):  # A_t = sum_l (gamma lam)^l delta_{t+l}, with V after the end = 0
            for k in range(t, 5):
                next_value = values[row, k + 1] if k + 1 < 5 else 0.0
                delta = rewards[row, k] + gamma * next_value - values[row, k]
                expected[row, t] += (gamma * lam) ** (k - t) * delta
    got = gae(torch.tensor(rewards), torch.tensor(values), gamma, lam)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([math.log(0.5), math.log(0.2)]), torch.tensor([math.log(0.25), math.log(0.4)])
    k1 = kl_penalty(logp, ref, "k1")
    k3 = kl_penalty(logp, ref, "k3")
    # k1 = log(p / q); k3 = q/p - 1 - log(q/p)
    assert k1.tolist() == pytest.approx([math.log(2.0), math.log(0.5)])
    assert k3.tolist() == pytest.approx([0.5 - 1 - math.log(0.5), 2.0 - 1 - math.log(2.0)])


# --- group advantages --------------------------------------------------------------------------------


def test_group_index_numbers_keys_by_first_appearance():
    assert group_index(["b", ("p", 1), "b", 7, ("p", 1)]).tolist() == [0, 1, 0, 2, 1]
    assert pool_singletons(torch.tensor([0, 1, 0, 2, 3])).tolist() == [0, 4, 0, 4, 4]
    assert pool_singletons(torch.tensor([0, 0, 1, 1])).tolist() == [0, 0, 1, 1]


def test_rloo_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    # group 0: R_i - mean of the other two; group 1: R_i - the other; 5.0 is the only lone rollout -> 0
    expected = [1 - 2.5, 2 - 2.0, 3 - 1.5, 10 - 20, 20 - 10, 0.0]
    assert rloo_advantages(rewards, groups).tolist() == pytest.approx(expected)


def test_rloo_pools_lone_rollouts_into_a_batch_baseline():
    rewards = torch.tensor([1.0, 4.0, 7.0, 0.0, 2.0])
    groups = torch.tensor([0, 1, 2, 3, 3])  # three lone rollouts, one pair
    expected = [1 - 5.5, 4 - 4.0, 7 - 2.5, 0 - 2, 2 - 0]
    assert rloo_advantages(rewards, groups).tolist() == pytest.approx(expected)


def test_grpo_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 5.0, 5.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    std1 = math.sqrt(((10 - 15) ** 2 + (20 - 15) ** 2) / 1)  # unbiased
    expected = [-1 / 1.0001, 0.0, 1 / 1.0001, -5 / (std1 + 1e-4), 5 / (std1 + 1e-4), 0.0, 0.0]  # std 0 -> 0 / eps
    assert grpo_advantages(rewards, groups).tolist() == pytest.approx(expected, rel=1e-6)
    assert grpo_advantages(torch.tensor([3.0]), torch.tensor([0])).tolist() == [0.0]  # one lone rollout


def test_whiten_one_dimensional():
    x = torch.tensor([1.0, 2.0, 6.0])
    expected = (np.array([1.0, 2.0, 6.0]) - 3.0) / math.sqrt(np.var([1.0, 2.0, 6.0], ddof=1) + 1e-8)
    np.testing.assert_allclose(whiten(x).numpy(), expected, rtol=1e-6)
    assert whiten(torch.tensor([4.0])).tolist() == [0.0]


# --- the PPO loss ------------------------------------------------------------------------------------


def _reference_loss(logp, old, adv, mask, eps, values=None, old_values=None, returns=None, eps_v=0.2, vf_coef=0.1,
                    ref=None, beta=0.0):
    """Token-by-token float64 PPO loss (the textbook formulas)."""
    total, sums = np.zeros_like(logp), dict.fromkeys(("pg", "vf", "clip", "vclip", "akl", "kl"), 0.0)
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if not mask[i, t]:
                continue
            r = math.exp(logp[i, t] - old[i, t])
            a = adv[i, t]
            pg = max(-a * r, -a * min(max(r, 1 - eps), 1 + eps))
            total[i, t] = pg
            sums["pg"] += pg
            sums["clip"] += float(-a * r < pg)
            sums["akl"] += 0.5 * (logp[i, t] - old[i, t]) ** 2
            if values is not None:
                v, v0, g = values[i, t], old_values[i, t], returns[i, t]
                vc = v0 + min(max(v - v0, -eps_v), eps_v)
                vf = 0.5 * max((v - g) ** 2, (vc - g) ** 2)
                total[i, t] += vf_coef * vf
                sums["vf"] += vf
                sums["vclip"] += float((vc - g) ** 2 > (v - g) ** 2)
            if ref is not None:
                q_over_p = math.exp(ref[i, t] - logp[i, t])
                k3 = q_over_p - 1 - math.log(q_over_p)
                total[i, t] += beta * k3
                sums["kl"] += k3
    return total, sums


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    shape = (3, 4)
    old = np.log(rng.uniform(0.05, 0.9, size=shape))
    logp = old + rng.normal(scale=0.4, size=shape)  # ratios both inside and outside the clip range
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=float)
    return rng, logp, old, rng.normal(size=shape), mask


def test_clipped_policy_loss_matches_hand_formula():
    _, logp, old, adv, mask = _random_case(0)
    per_token, stats = ppo_loss(torch.tensor(logp), torch.tensor(old), torch.tensor(adv), torch.tensor(mask), 0.2)
    total, sums = _reference_loss(logp, old, adv, mask, 0.2)
    np.testing.assert_allclose(per_token.numpy(), total, rtol=1e-10, atol=1e-12)
    assert float(stats["policy_loss"]) == pytest.approx(sums["pg"])
    assert float(stats["clipfrac"]) == sums["clip"] and 0 < sums["clip"] < mask.sum()
    assert float(stats["approx_kl"]) == pytest.approx(sums["akl"])
    assert float(stats["tokens"]) == mask.sum()
    assert float(stats["value_loss"]) == 0.0 and float(stats["ref_kl"]) == 0.0


def test_value_and_kl_terms_match_hand_formula():
    rng, logp, old, adv, mask = _random_case(1)
    values, old_values, returns, ref = (rng.normal(size=logp.shape) for _ in range(4))
    ref = np.log(rng.uniform(0.05, 0.9, size=logp.shape))
    per_token, stats = ppo_loss(
        torch.tensor(logp), torch.tensor(old), torch.tensor(adv), torch.tensor(mask), 0.2,
        values=torch.tensor(values), old_values=torch.tensor(old_values), returns=torch.tensor(returns),
        cliprange_value=0.3, vf_coef=0.5, ref_logprobs=torch.tensor(ref), kl_coef=0.04)
    total, sums = _reference_loss(logp, old, adv, mask, 0.2, values, old_values, returns, 0.3, 0.5, ref, 0.04)
    np.testing.assert_allclose(per_token.numpy(), total, rtol=1e-10, atol=1e-12)
    assert float(stats["value_loss"]) == pytest.approx(sums["vf"])
    assert float(stats["vf_clipfrac"]) == sums["vclip"]
    assert float(stats["ref_kl"]) == pytest.approx(sums["kl"])


def test_in_loss_kl_gradient_and_padding():
    """d/d logp of beta * k3 is beta * (1 - ref/p); garbage on padding never becomes inf or nan."""
    logp = torch.tensor([[math.log(0.5), -200.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[math.log(0.25), 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    per_token, _ = ppo_loss(logp, logp.detach(), torch.zeros_like(ref), mask, 0.2, ref_logprobs=ref, kl_coef=0.1)
    per_token.sum().backward()
    assert torch.isfinite(per_token).all()
    assert logp.grad[0].tolist() == pytest.approx([0.1 * (1 - 0.5), 0.0])


# --- ordering and chunks -----------------------------------------------------------------------------


def test_group_shuffled_order_keeps_groups_together():
    keys = ["a", "b", "a", "c", "b", "a"]
    order = group_shuffled_order(keys, torch.Generator().manual_seed(3))
    assert sorted(order) == list(range(6))
    runs = [keys[i] for i in order]
    assert all(len({*runs[j:j + n]}) == 1 for j, n in zip(*_run_starts(runs)))
    distinct = list(range(7))  # all keys distinct: the plain seeded permutation
    assert group_shuffled_order(distinct, torch.Generator().manual_seed(3)) == \
        torch.randperm(7, generator=torch.Generator().manual_seed(3)).tolist()


def _run_starts(runs: list) -> tuple[list[int], list[int]]:
    starts = [j for j in range(len(runs)) if j == 0 or runs[j] != runs[j - 1]]
    assert len(starts) == len(set(runs))  # each key forms exactly one run
    return starts, [runs.count(runs[j]) for j in starts]


def test_local_chunks_deal_consecutive_chunks_round_robin():
    indices = list(range(10, 20))
    assert local_chunks(indices, 3, 0, 1) == [([10, 11, 12], True), ([13, 14, 15], True), ([16, 17, 18], True),
                                              ([19], True)]
    assert local_chunks(indices, 3, 1, 2) == [([13, 14, 15], True), ([19], True)]
    assert local_chunks(indices[:3], 3, 1, 2) == [([10], False)]  # nothing left: a dummy pass keeps step


def test_clipfrac_counts_clipping_not_the_importance_weights():
    """On-policy (ratio 1) nothing is clipped, whatever the truncated-IS weights (a bf16 server's ~4 % noise made
    the weighted loss differ from the unclipped one on about half the tokens, which was counted as clipping)."""
    rng, logp, _, adv, mask = _random_case(2)
    weights = rng.uniform(0.96, 1.04, size=logp.shape)
    _, stats = ppo_loss(torch.tensor(logp), torch.tensor(logp), torch.tensor(adv), torch.tensor(mask), 0.2,
                        is_weights=torch.tensor(weights))
    assert float(stats["clipfrac"]) == 0.0
    _, old, _, _, _ = _random_case(0)  # off-policy: the same count as without weights, by the hand formula
    _, stats = ppo_loss(torch.tensor(logp), torch.tensor(old), torch.tensor(adv), torch.tensor(mask), 0.2,
                        is_weights=torch.tensor(weights))
    assert float(stats["clipfrac"]) == _reference_loss(logp, old, adv, mask, 0.2)[1]["clip"]
