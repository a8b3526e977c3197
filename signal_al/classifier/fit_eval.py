"""Fit a fresh classifier and measure it on the test split: the one recipe every caller shares.

The loop retrains from the pretrained checkpoint each round, the model annotator trains once
on the full train split, and generator evaluation measures the accuracy gained by extra
samples; all three are "fresh head, seeded training, one pass over the test split".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from signal_al.classifier.config import ClassifierConfig
from signal_al.classifier.inference import predict
from signal_al.classifier.metrics import classification_metrics
from signal_al.classifier.training import TrainStats, load_classifier, train_classifier
from signal_al.core.errors import TrainingDiverged
from signal_al.core.runtime import seed_everything
from signal_al.data.task import TextDataset

__all__ = ["FitResult", "evaluate", "fit_and_evaluate"]


@dataclass
class FitResult:
    """The trained model, its training statistics and its test metrics (see :func:`classification_metrics`)."""

    model: torch.nn.Module
    stats: TrainStats
    metrics: dict


def evaluate(model: torch.nn.Module, tokenizer: Any, test: TextDataset, label_names: tuple[str, ...] | list[str],
             config: ClassifierConfig, *, device: Any = "cpu") -> dict:
    """Accuracy, macro-F1 and per-class scores of ``model`` on ``test`` (one inference pass)."""
    outputs = predict(model, tokenizer, test.texts, test.text_pairs, batch_size=config.eval_batch_size,
                      max_length=config.max_length, device=device)
    if not np.isfinite(outputs.probs).all():  # weights finite but so large that inference overflows
        raise TrainingDiverged("classifier training diverged: its predictions on the test split are not finite; "
                               f"lower classifier.learning_rate (now {config.learning_rate:g})")
    return classification_metrics(test.labels, outputs.probs.argmax(axis=1), label_names)


def fit_and_evaluate(model_source: str, tokenizer: Any, train: TextDataset, test: TextDataset,
                     label_names: tuple[str, ...] | list[str], config: ClassifierConfig, *, seed: int,
                     device: Any = "cpu", progress: bool = False) -> FitResult:
    """A fresh classifier from ``model_source`` (new head seeded by ``seed``), trained on ``train``
    with ``seed`` and evaluated on ``test``."""
    seed_everything(seed)  # the new head's initialisation
    model = load_classifier(model_source, label_names)
    stats = train_classifier(model, tokenizer, train, config, seed=seed, device=device, progress=progress)
    return FitResult(model, stats, evaluate(model, tokenizer, test, label_names, config, device=device))
