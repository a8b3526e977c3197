"""Pure tensor maths of the generator update: masked statistics, KL estimators, advantages, PPO loss.

Nothing here touches a model, a process group or a file, so every function is tested against a
hand computation (tests/test_ppo_math.py). Shapes: per-token tensors are ``[rollouts, tokens]``
with a 0/1 ``mask`` of completion tokens; per-sequence tensors are ``[rollouts]``.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import torch

#: GRPO's std guard, as in the DeepSeekMath paper / TRL's GRPOTrainer.
GRPO_EPS = 1e-4


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Whiten ``values`` over the positions where ``mask`` is true (unbiased variance, as TRL did)."""
    mean = masked_mean(values, mask)
    centered = values - mean
    count = mask.sum()
    var = (centered.pow(2) * mask).sum() / (count - 1).clamp_min(1)
    whitened = centered * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates over the last dimension (values and rewards are 0 on padding)."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    return advantages


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate: k1 = log-ratio, k3 = (r - 1) - log r with r = ref/pi."""
    log_ratio = logprobs - ref_logprobs
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    return log_ratio


def truncated_is_weights(old_logprobs: torch.Tensor, served_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float) -> torch.Tensor:
    """Per-token truncated importance weights ``min(pi_old / pi_served, cap)`` (TRL's ``token_truncate``).

    The rollouts were sampled by the serving engine; when its probabilities differ from the
    trainer's (another kernel, dtype or a stale adapter) the clipped PPO ratio, which starts at
    1, cannot see it. Padding gets weight 0.

    >>> w = truncated_is_weights(torch.tensor([[0.0, -1.0]]), torch.tensor([[-2.0, -1.0]]), torch.ones(1, 2), 3.0)
    >>> [round(x, 4) for x in w[0].tolist()]
    [3.0, 1.0]
    """
    m = mask.to(old_logprobs.dtype)
    return torch.exp((old_logprobs - served_logprobs) * m).clamp(max=cap) * m


def sequence_kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per sequence ``sum_t k3``: a non-negative, unbiased estimate of KL(pi || ref) on samples of pi.

    With ``r_t = ref(y_t | y_<t) / pi(y_t | y_<t)``, ``k3 = (r_t - 1) - log r_t >= 0`` and
    ``E_pi[r_t - 1 | y_<t] = 0``, so the sum over a sampled sequence has the sequence KL as
    its mean (Schulman's k3, token by token). Only valid on samples *from* ``pi``.

    >>> kl = sequence_kl_k3(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -3.0]]), torch.ones(1, 2))
    >>> round(float(kl), 6)  # token 1: 0; token 2: (e^-1 - 1) + 1 = e^-1
    0.367879
    """
    return (kl_penalty(logprobs, ref_logprobs, "k3") * mask.to(logprobs.dtype)).sum(1)


# --- group-relative advantages (RLOO, GRPO) ------------------------------------------------------------


def group_index(keys: Sequence[Hashable]) -> torch.Tensor:
    """Integer group id per rollout (0, 1, ... in order of first appearance of each key)."""
    ids: dict[Hashable, int] = {}
    return torch.tensor([ids.setdefault(key, len(ids)) for key in keys], dtype=torch.long)


def pool_singletons(groups: torch.Tensor) -> torch.Tensor:
    """Merge every group of size 1 into one pooled group.

    A lone rollout has no peers to form a baseline from. Pooling the lone rollouts keeps
    them useful: with no repeated prompts at all, RLOO becomes leave-one-out over the whole
    batch and GRPO a batch-standardised reward (instead of every advantage being zero).
    Only if a single rollout stays alone after pooling does its advantage become 0.
    """
    counts = torch.bincount(groups)
    alone = counts[groups] == 1
    if not alone.any():
        return groups
    pooled = groups.clone()
    pooled[alone] = int(groups.max()) + 1
    return pooled


def _group_sums(values: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-rollout sum of its group's values and its group size."""
    size = int(groups.max()) + 1
    sums = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(0, groups, values)
    counts = torch.bincount(groups, minlength=size).to(values.dtype)
    return sums[groups], counts[groups]


def rloo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out: ``A_i = R_i - mean_{j != i in group(i)} R_j`` (Ahmadian et al., 2024).

    Groups of size 1 are pooled first (:func:`pool_singletons`).
    """
    groups = pool_singletons(groups)
    sums, counts = _group_sums(rewards, groups)
    others = (sums - rewards) / (counts - 1).clamp_min(1)
    return torch.where(counts > 1, rewards - others, torch.zeros_like(rewards))


def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor, eps: float = GRPO_EPS) -> torch.Tensor:
    """GRPO: ``A_i = (R_i - mean_g) / (std_g + eps)`` with the unbiased group std (as TRL computes it).

    Groups of size 1 are pooled first (:func:`pool_singletons`).
    """
    groups = pool_singletons(groups)
    sums, counts = _group_sums(rewards, groups)
    mean = sums / counts
    squares, _ = _group_sums((rewards - mean) ** 2, groups)
    std = (squares / (counts - 1).clamp_min(1)).sqrt()
    return torch.where(counts > 1, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


def whiten(values: torch.Tensor) -> torch.Tensor:
    """Whiten a 1-D tensor (unbiased variance); fewer than two values are returned centred."""
    return masked_whiten(values, torch.ones_like(values)) if values.numel() > 1 else values - values.mean()


# --- the clipped PPO loss ----------------------------------------------------------------------------


def ppo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
             cliprange: float, *, values: torch.Tensor | None = None, old_values: torch.Tensor | None = None,
             returns: torch.Tensor | None = None, cliprange_value: float = 0.2, vf_coef: float = 0.1,
             ref_logprobs: torch.Tensor | None = None, kl_coef: float = 0.0,
             is_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Masked per-token loss and the masked *sums* of the logged statistics.

    Loss per token: clipped policy loss ``max(-A r, -A clip(r, 1 +- eps))`` with
    ``r = exp(logprobs - old_logprobs)``; plus ``vf_coef`` x clipped value loss when ``values``
    are given (PPO with a critic); plus ``kl_coef`` x k3(pi || ref) when ``ref_logprobs`` are
    given (GRPO's in-loss KL, differentiable through ``logprobs``). ``is_weights`` (constants,
    :func:`truncated_is_weights`) multiply the policy term only, as TRL's GRPO applies its vLLM
    importance-sampling correction. Statistics are sums over
    the masked tokens (``tokens`` counts them) so callers can add them up over micro-batches
    and processes before dividing.
    """
    m = mask.to(logprobs.dtype)
    log_ratio = (logprobs - old_logprobs) * m
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    policy = torch.max(unclipped, clipped)
    clipped_tokens = (unclipped < policy).to(m.dtype) * m  # before the IS weights, which rescale both sides
    if is_weights is not None:
        policy = policy * is_weights.detach()
    per_token = policy
    zero = logprobs.new_zeros(())
    stats = {
        "policy_loss": (policy * m).sum(),
        "clipfrac": clipped_tokens.sum(),
        "approx_kl": (0.5 * log_ratio.pow(2) * m).sum(),
        "value_loss": zero,
        "vf_clipfrac": zero,
        "ref_kl": zero,
        "tokens": m.sum(),
    }
    if values is not None:
        assert old_values is not None and returns is not None, "a value loss needs old_values and returns"
        v_clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
        error, error_clipped = (values - returns).pow(2), (v_clipped - returns).pow(2)
        value = 0.5 * torch.max(error, error_clipped)
        per_token = per_token + vf_coef * value
        stats["value_loss"] = (value * m).sum()
        stats["vf_clipfrac"] = ((error_clipped > error).to(m.dtype) * m).sum()
    if ref_logprobs is not None:
        # masked before exp so padding (log-probs 0 vs garbage) can never overflow
        ref_log_ratio = (ref_logprobs - logprobs) * m
        k3 = torch.expm1(ref_log_ratio) - ref_log_ratio
        per_token = per_token + kl_coef * k3
        stats["ref_kl"] = (k3 * m).sum()
    return per_token * m, {key: value.detach() for key, value in stats.items()}


__all__ = [
    "GRPO_EPS",
    "gae",
    "group_index",
    "grpo_advantages",
    "kl_penalty",
    "masked_mean",
    "masked_whiten",
    "pool_singletons",
    "ppo_loss",
    "rloo_advantages",
    "sequence_kl_k3",
    "truncated_is_weights",
    "whiten",
]
