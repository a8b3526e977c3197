"""Fine-tune the sequence classifier on the labeled set (retrained every active-learning round).

A short explicit loop rather than ``transformers.Trainer``: labeled sets are tiny (tens to
thousands of rows), a round must be deterministic on CPU for exact resume, and the only
extras needed are a step floor for small sets and optional early stopping on a dev split.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from signal_al.classifier.config import ClassifierConfig
from signal_al.core.errors import TrainingDiverged
from signal_al.core.progress import progress_bar
from signal_al.core.runtime import seed_everything
from signal_al.data.task import TextDataset


@dataclass
class TrainStats:
    steps: int
    final_loss: float
    best_dev_accuracy: float | None
    seconds: float


def load_tokenizer(model_name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_name_or_path)


def load_classifier(model_name_or_path: str, label_names: tuple[str, ...] | list[str]) -> torch.nn.Module:
    """A sequence-classification model with a freshly initialised head for ``label_names``."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" report is expected here
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            model_name_or_path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def _encode(tokenizer: Any, data: TextDataset, max_length: int) -> list[dict[str, Any]]:
    encoded = tokenizer(data.texts, data.text_pairs, truncation=True, max_length=max_length)
    keys = list(encoded.keys())
    return [{key: encoded[key][i] for key in keys} | {"labels": int(data.labels[i])} for i in range(len(data))]


def _split_dev(data: TextDataset, fraction: float, seed: int) -> tuple[TextDataset, TextDataset | None]:
    n_dev = int(round(fraction * len(data)))
    if fraction <= 0 or n_dev < 1 or len(data) - n_dev < 1:
        return data, None
    order = np.random.default_rng(seed).permutation(len(data))
    return data.subset(np.sort(order[n_dev:])), data.subset(np.sort(order[:n_dev]))


def _accuracy(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for batch in batches:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            total += len(batch["labels"])
    model.train()
    return correct / max(total, 1)


def _diverged(config: ClassifierConfig, step: int, total: int, what: str) -> TrainingDiverged:
    return TrainingDiverged(f"classifier training diverged at step {step} of {total} ({what}): lower "
                            f"classifier.learning_rate (now {config.learning_rate:g})")


def num_training_steps(n_rows: int, config: ClassifierConfig) -> int:
    """Epochs over the labeled set, at least ``min_steps``, at most ``max_steps``."""
    steps = max(config.min_steps, config.epochs * math.ceil(n_rows / config.batch_size))
    return min(steps, config.max_steps) if config.max_steps is not None else steps


def train_classifier(
    model: torch.nn.Module,
    tokenizer: Any,
    data: TextDataset,
    config: ClassifierConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> TrainStats:
    """Fine-tune ``model`` in place on ``data``; seeded so the same inputs give the same weights."""
    import time

    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    if len(data) == 0:
        raise ValueError("cannot train the classifier on an empty labeled set")
    start = time.perf_counter()
    seed_everything(seed)
    train_set, dev_set = _split_dev(data, config.dev_fraction, seed)
    collate = DataCollatorWithPadding(tokenizer)
    rows = _encode(tokenizer, train_set, config.max_length)
    dev_batches = None
    if dev_set is not None:
        dev_rows = _encode(tokenizer, dev_set, config.max_length)
        dev_batches = [collate(dev_rows[i:i + config.eval_batch_size]) for i in range(0, len(dev_rows),
                                                                                      config.eval_batch_size)]
        dev_batches = [{k: v.to(device) for k, v in b.items()} for b in dev_batches]

    model.to(device).train()
    total_steps = num_training_steps(len(rows), config)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    order_rng = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(rows) / config.batch_size)

    step, loss_value = 0, float("nan")
    best_accuracy, best_state, evals_without_gain = -1.0, None, 0
    bar = progress_bar(total=total_steps, desc="train classifier", unit="step", leave=False, disable=not progress)
    while step < total_steps:
        order = order_rng.permutation(len(rows))
        for first in range(0, len(rows), config.batch_size):
            batch = collate([rows[i] for i in order[first:first + config.batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise _diverged(config, step + 1, total_steps, f"loss {loss.item()}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = loss.item()
            bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
            bar.update(1)
            if dev_batches is not None and (step % steps_per_epoch == 0 or step == total_steps):
                accuracy = _accuracy(model, dev_batches)
                if accuracy > best_accuracy:
                    best_accuracy, best_state, evals_without_gain = accuracy, copy.deepcopy(model.state_dict()), 0
                else:
                    evals_without_gain += 1
                if evals_without_gain >= config.patience:
                    step = total_steps
            if step >= total_steps:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):  # the last step's update overflowed
        raise _diverged(config, step, total_steps, "weights not finite")
    model.eval()
    return TrainStats(step, loss_value, best_accuracy if dev_batches is not None else None,
                      time.perf_counter() - start)
