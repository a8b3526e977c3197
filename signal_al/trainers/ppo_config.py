"""Hyper-parameters of the generator's PPO + LoRA update (TRL-style names and help text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from signal_al.core.config_io import field
from signal_al.core.errors import ConfigError


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass
class PPOConfig:
    learning_rate: float = field(1e-5, help="AdamW learning rate of the LoRA adapter and value head.")
    per_device_train_batch_size: int = field(8, help="Rollouts per device per forward/backward micro-step.")
    gradient_accumulation_steps: int = field(
        1, help="Micro-steps accumulated into each optimiser step: a minibatch is per_device_train_batch_size x "
        "gradient_accumulation_steps x processes rollouts."
    )
    num_ppo_epochs: int = field(4, help="PPO epochs over each rollout batch (old log-probs stay fixed within it).")
    num_mini_batches: int = field(
        1, help="Minibatches (optimiser steps) per PPO epoch. A rollout batch, whose old log-probs, values, "
        "reference log-probs and advantages are computed once by the current policy, is num_mini_batches "
        "minibatches; D_RL is consumed in rollout batches (the last one may be smaller)."
    )
    cliprange: float = field(0.2, help="Policy ratio clip range.")
    cliprange_value: float = field(0.2, help="Value prediction clip range (gae only).")
    vf_coef: float = field(0.1, help="Value loss coefficient (gae only).")
    advantage: Literal["gae", "rloo", "grpo"] = field(
        "gae", help="Advantage estimator. gae: value head + GAE with the per-token KL penalty in the reward "
        "(classic PPO). rloo: sequence reward minus beta x summed KL, minus the leave-one-out mean of its group "
        "(whitened over D_RL if whiten_advantages). grpo: (reward - group mean) / (group std + 1e-4), with "
        "beta x k3 KL to the reference as a loss term. A group is the rollouts with the same 'group' id in D_RL "
        "(default: the same prompt tokens); rollouts alone in their group are pooled into one group. "
        "rloo/grpo train no value head."
    )
    share_prompt_forward: bool = field(
        True, help="Run each distinct prompt of a micro-batch once and reuse its KV cache for all its rollouts "
        "(same log-probs, less compute). Training forwards fall back to full sequences under "
        "gradient_checkpointing, which cannot replay a cache."
    )
    gamma: float = field(1.0, help="Discount factor.")
    lam: float = field(0.95, help="GAE lambda.")
    kl_coef: float = field(0.05, help="Initial (or fixed) beta of the per-token KL penalty to the base model.")
    kl_estimator: Literal["k1", "k3"] = field("k1", help="KL estimator: k1 = log-ratio, k3 = unbiased low-variance.")
    adaptive_kl: bool = field(False, help="Adapt beta towards target_kl (Ziegler et al.) instead of keeping it fixed.")
    target_kl: float = field(6.0, help="Adaptive KL: target KL per sequence.")
    kl_horizon: int = field(10000, help="Adaptive KL: horizon in rollouts.")
    whiten_rewards: bool = field(False, help="Whiten the round's rewards before the update.")
    reward_clip: float | None = field(None, help="Clip rewards to [-reward_clip, reward_clip] (after whitening).")
    max_grad_norm: float = field(1.0, help="Gradient clipping norm.")
    whiten_advantages: bool = field(
        True, help="gae: whiten advantages over each rollout batch (TRL PPO always does); rloo: whiten the "
        "sequence advantages over D_RL; grpo: unused (its advantages are already standardised per group).")
    temperature: float = field(1.0, help="Sampling temperature the rollouts were generated with (logits are divided by it).")
    lora_r: int = field(8, help="LoRA rank; one of vLLM's max_lora_rank choices (1, 8, 16, 32, 64, 128, 256, 320, 512).")
    lora_alpha: int = field(16, help="LoRA alpha.")
    lora_dropout: float = field(0.05, help="LoRA dropout (only active with disable_dropout: false).")
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], help="Modules that get LoRA adapters."
    )
    lora_layers: int | None = field(
        None, help="LoRA on the top N decoder layers only: the layers below get no adapter, so backward stops at "
        "layer L-N (cheaper updates; scripts/bench_ppo.py measures it). None: every layer.")
    importance_sampling_cap: float | None = field(
        3.0, help="Truncated importance sampling for rollouts that carry the server's log-probs: each token's policy "
        "loss is weighted by min(pi_old / pi_served, cap), so a served policy that differs from the trained one "
        "(another kernel or dtype, a stale adapter) is corrected, as TRL's GRPO does with vLLM (token_truncate, "
        "cap 3). The mismatch is measured either way (served_logprob_mae). None: no correction.")
    reset_optimizer: bool = field(
        False, help="Start every update with a fresh AdamW (an ablation). Default: one optimizer for the generator's "
        "life, its state saved with each adapter (optimizer.pt) and restored when training continues from it.")
    load_in_4bit: bool = field(False, help="QLoRA: load the base model in 4-bit through bitsandbytes (GPU only).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        "auto", help="Base weights dtype for training; auto = bfloat16 on a GPU that supports it, else float32."
    )
    disable_dropout: bool = field(
        True, help="Turn off every dropout (LoRA dropout included) so old and new log-probs agree (TRL default)."
    )
    gradient_checkpointing: bool = field(False, help="Recompute activations in backward to save memory.")
    seed: int = field(0, help="Seed for minibatch shuffling and adapter initialisation.")
    launcher: Literal["in-process", "accelerate"] = field(
        "in-process", help="Where the loop runs each update: in its own process on its device, or as an "
        "`accelerate launch ... signal-al train-generator` job (multi-GPU, DeepSpeed, FSDP).")
    accelerate_config: str | None = field(
        None, help="launcher accelerate: accelerate config file, e.g. configs/accelerate/multi_gpu.yaml "
        "(default: accelerate's own default config).")
    num_processes: int | None = field(None, help="launcher accelerate: processes (GPUs) of the job; default: the config's.")
    gpu_ids: str | None = field(
        None, help="launcher accelerate: CUDA_VISIBLE_DEVICES of the job, e.g. '1,2,3' when GPU 0 serves vLLM.")

    def __post_init__(self) -> None:
        positive = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_ppo_epochs",
                    "num_mini_batches", "lora_r", "lora_alpha", "kl_horizon", "max_grad_norm")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"ppo.{key}: must be positive, got {getattr(self, key)}")
        for key in ("cliprange", "cliprange_value", "kl_coef", "lora_dropout", "vf_coef"):
            if getattr(self, key) < 0:
                raise ConfigError(f"ppo.{key}: must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"ppo.gamma/ppo.lam: must be in [0, 1], got {self.gamma}, {self.lam}")
        if self.lora_r not in VLLM_LORA_RANKS:
            raise ConfigError(f"ppo.lora_r: must be one of {', '.join(map(str, VLLM_LORA_RANKS))} "
                              f"(ranks vLLM can serve), got {self.lora_r}")
        if not self.lora_dropout < 1.0:
            raise ConfigError(f"ppo.lora_dropout: must be below 1, got {self.lora_dropout}")
        if self.target_kl <= 0:
            raise ConfigError(f"ppo.target_kl: must be positive, got {self.target_kl}")
        if not 0 <= self.seed <= 2**31 - 1:
            raise ConfigError(f"ppo.seed: must be in [0, 2147483647], got {self.seed}")
        if self.temperature <= 0:
            raise ConfigError(f"ppo.temperature: must be positive, got {self.temperature}")
        if not self.lora_target_modules:
            raise ConfigError("ppo.lora_target_modules: must not be empty")
        if self.num_processes is not None and self.num_processes <= 0:
            raise ConfigError(f"ppo.num_processes: must be positive, got {self.num_processes}")
        if self.lora_layers is not None and self.lora_layers <= 0:
            raise ConfigError(f"ppo.lora_layers: must be positive (or null for every layer), got {self.lora_layers}")
        if self.importance_sampling_cap is not None and not self.importance_sampling_cap >= 1.0:
            raise ConfigError(f"ppo.importance_sampling_cap: must be >= 1 (or null for no correction), "
                              f"got {self.importance_sampling_cap}")
        if self.reward_clip is not None and self.reward_clip <= 0:
            raise ConfigError(f"ppo.reward_clip: must be positive, got {self.reward_clip}")
