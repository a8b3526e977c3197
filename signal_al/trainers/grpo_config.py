"""Options of the TRL-native alternative: ``trl.GRPOTrainer`` with a LoRA adapter (the ``grpo`` config
section, read by ``signal-al train-generator --trainer grpo``).

The shared hyper-parameters (learning rate, batch sizes, epochs, clip range, beta, LoRA)
come from :class:`~signal_al.trainers.ppo_config.PPOConfig`; this holds only what GRPO adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from signal_al.core.config_io import field
from signal_al.core.errors import ConfigError


@dataclass
class GRPOOptions:
    num_generations: int = field(
        4, help="Completions per prompt (online) or stored rollouts per replay group; advantages are "
        "rewards minus the group mean."
    )
    max_completion_length: int = field(64, help="Online sampling: new-token limit per completion.")
    max_steps: int | None = field(
        None, help="Optimiser steps; default is one pass over the prompts (or rollouts) times num_ppo_epochs."
    )
    scale_rewards: Literal["group", "batch", "none"] = field(
        "group", help="Divide advantages by the reward std of the group, of the batch, or not at all."
    )
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = field("dapo", help="TRL GRPO loss aggregation.")

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ConfigError(f"grpo.num_generations: must be >= 2 (a group baseline needs two), got {self.num_generations}")
        if self.max_completion_length <= 0:
            raise ConfigError(f"grpo.max_completion_length: must be positive, got {self.max_completion_length}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError(f"grpo.max_steps: must be positive, got {self.max_steps}")
