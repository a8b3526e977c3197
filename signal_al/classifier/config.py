"""Hyper-parameters of the classifier retrained each round (paper defaults: lr 2e-5, batch 16)."""

from __future__ import annotations

from dataclasses import dataclass

from signal_al.core.config_io import check, field


@dataclass
class ClassifierConfig:
    model: str = field(
        "minilm-l6",
        help="Offline asset name (minilm-l6), a local folder, or a hub name such as bert-base-uncased.",
    )
    max_length: int = field(128, help="Tokenizer truncation length.")
    learning_rate: float = field(2e-5, help="AdamW learning rate (papers: 2e-5).")
    batch_size: int = field(16, help="Training batch size.")
    eval_batch_size: int = field(128, help="Inference batch size (sorted by length, dynamic padding).")
    epochs: int = field(3, help="Epochs over the labeled set per round.")
    min_steps: int = field(50, help="At least this many optimiser steps per round (small labeled sets).")
    weight_decay: float = field(0.01, help="AdamW weight decay.")
    warmup_ratio: float = field(0.1, help="Linear warm-up share of the steps.")
    max_steps: int | None = field(None, help="At most this many optimiser steps per round (caps large labeled sets).")
    reinit_each_round: bool = field(True, help="Retrain from the pretrained checkpoint every round (paper).")
    dev_fraction: float = field(
        0.0, help="Hold out this share of the labeled set as a dev split for early stopping (0 = no early stop)."
    )
    patience: int = field(2, help="Early stop: evaluations on the dev split without improvement before stopping.")

    def __post_init__(self) -> None:
        for key in ("max_length", "batch_size", "eval_batch_size", "epochs"):
            check(getattr(self, key) > 0, f"classifier.{key}", f"must be positive, got {getattr(self, key)}")
        check(self.learning_rate > 0, "classifier.learning_rate", f"must be positive, got {self.learning_rate}")
        check(0.0 <= self.dev_fraction < 1.0, "classifier.dev_fraction", f"must be in [0, 1), got {self.dev_fraction}")
        if self.max_steps is not None:
            check(self.max_steps >= self.min_steps, "classifier.max_steps", "must be >= classifier.min_steps")
        check(self.min_steps >= 0, "classifier.min_steps", f"must be >= 0, got {self.min_steps}")
        if self.max_steps is not None:
            check(self.max_steps > 0, "classifier.max_steps", f"must be positive or null, got {self.max_steps}")
        check(self.weight_decay >= 0, "classifier.weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(self.patience > 0, "classifier.patience", f"must be positive, got {self.patience}")
        check(bool(self.model.strip()), "classifier.model", "must not be empty")
        check(0.0 <= self.warmup_ratio < 1.0, "classifier.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
