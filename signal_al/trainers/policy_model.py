"""The module Accelerate wraps: the PEFT policy (+ the value head for GAE) and its log-prob forward.

The forward takes one of the two batch layouts of :mod:`signal_al.trainers.batches`:

* **full**: every row is prompt + completion; the hidden states at the positions predicting
  completion tokens are gathered (``gather_index``).
* **shared prompt**: the distinct prompts of the micro-batch (without their last token) run
  once with a KV cache, the cache rows are repeated for the rollouts that share each prompt,
  and only ``[last prompt token] + completion[:-1]`` runs per rollout. Rollouts of a group
  share a prompt, so the prompt's forward (and, in training, its activations and backward)
  is paid once per group instead of once per rollout. Gradients flow through the cached
  keys/values into the prompt's LoRA weights, so the maths is that of the full layout.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from signal_al.trainers.value_head import ValueHead


def _cache_keyword(decoder: nn.Module) -> str:
    """transformers 5 names the cache argument ``cache``; 4.x names it ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def shared_prompt_hidden(decoder: nn.Module, config: Any, input_ids: torch.Tensor, prefix_ids: torch.Tensor | None,
                         prefix_index: torch.Tensor | None, attention_mask: torch.Tensor | None,
                         position_ids: torch.Tensor) -> torch.Tensor:
    """Hidden states of the completion part, the prompt prefixes run once (see the module docstring)."""
    if prefix_ids is None:  # every prompt is one token long: nothing to cache
        return decoder(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
    from transformers import DynamicCache

    keyword = _cache_keyword(decoder)
    cache = DynamicCache(config=config)
    # right-padded prefixes: real tokens never attend to the padding after them, so no mask here
    decoder(input_ids=prefix_ids, use_cache=True, **{keyword: cache})
    cache.batch_select_indices(prefix_index)  # one cache row per rollout (differentiable copy)
    return decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                   **{keyword: cache}).last_hidden_state


class PolicyWithValue(nn.Module):
    """The PEFT policy and (for GAE) its value head as one module, so DDP/DeepSpeed/FSDP wrap both."""

    def __init__(self, policy: nn.Module, value_head: ValueHead | None) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = value_head
        # FSDP's transformer auto-wrap reads the decoder layer classes from here
        self._no_split_modules = getattr(policy.get_base_model(), "_no_split_modules", None)

    def forward(self, input_ids: torch.Tensor, completion_ids: torch.Tensor, gather_index: torch.Tensor | None = None,
                prefix_ids: torch.Tensor | None = None, prefix_index: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                temperature: float = 1.0, with_entropy: bool = False) -> dict[str, torch.Tensor]:
        """Per completion token: log-prob, value (GAE only) and, with ``with_entropy``, entropy (no grad)."""
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax

        causal_lm = self.policy.get_base_model()
        decoder = causal_lm.get_decoder()
        if gather_index is not None:
            # Right padding + causal attention: padding never reaches an earlier position, so no mask.
            hidden = decoder(input_ids=input_ids, use_cache=False).last_hidden_state
            # Hidden state at position t predicts token t+1: keep only those predicting completion tokens.
            hidden = hidden.gather(1, gather_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        else:
            assert position_ids is not None, "the shared-prompt layout needs position_ids"
            hidden = shared_prompt_hidden(decoder, causal_lm.config, input_ids, prefix_ids, prefix_index,
                                          attention_mask, position_ids)
        logits = causal_lm.get_output_embeddings()(hidden).float() / temperature
        out = {"logprobs": selective_log_softmax(logits, completion_ids)}
        if self.value_head is not None:
            out["values"] = self.value_head(hidden)
        if with_entropy:
            with torch.no_grad():
                out["entropy"] = entropy_from_logits(logits)
        return out


__all__ = ["PolicyWithValue", "shared_prompt_hidden"]
