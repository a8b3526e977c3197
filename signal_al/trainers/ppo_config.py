"""Hyper-parameters of the generator's PPO + LoRA update (TRL-style names and help text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from signal_al.config_io import field
from signal_al.errors import ConfigError


@dataclass
class PPOConfig:
    learning_rate: float = field(1e-5, help="AdamW learning rate of the LoRA adapter and value head.")
    per_device_train_batch_size: int = field(8, help="Rollouts per device per optimiser micro-step.")
    gradient_accumulation_steps: int = field(1, help="Micro-steps accumulated before each optimiser step.")
    num_ppo_epochs: int = field(4, help="Passes over the round's rollouts.")
    num_mini_batches: int = field(1, help="Minibatches per PPO epoch.")
    cliprange: float = field(0.2, help="Policy ratio clip range.")
    cliprange_value: float = field(0.2, help="Value prediction clip range.")
    vf_coef: float = field(0.1, help="Value loss coefficient.")
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
    temperature: float = field(1.0, help="Sampling temperature the rollouts were generated with.")
    lora_r: int = field(8, help="LoRA rank (vLLM accepts 1, 8, 16, 32, 64, ...).")
    lora_alpha: int = field(16, help="LoRA alpha.")
    lora_dropout: float = field(0.05, help="LoRA dropout.")
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], help="Modules that get LoRA adapters."
    )
    load_in_4bit: bool = field(False, help="QLoRA: load the base model in 4-bit through bitsandbytes (GPU only).")
    seed: int = field(0, help="Seed for minibatch shuffling and adapter initialisation.")

    def __post_init__(self) -> None:
        positive = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_ppo_epochs",
                    "num_mini_batches", "lora_r", "lora_alpha", "kl_horizon", "max_grad_norm")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"ppo.{key}: must be positive, got {getattr(self, key)}")
        for key in ("cliprange", "cliprange_value", "kl_coef", "lora_dropout"):
            if getattr(self, key) < 0:
                raise ConfigError(f"ppo.{key}: must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"ppo.gamma/ppo.lam: must be in [0, 1], got {self.gamma}, {self.lam}")
        if self.reward_clip is not None and self.reward_clip <= 0:
            raise ConfigError(f"ppo.reward_clip: must be positive, got {self.reward_clip}")
