"""Classifier inference: class probabilities and the head's input embedding in one pass.

The SIGnAL score, CAL, BADGE and the clustering strategies all need both p(y|x) and the
representation the classification head sees, so one forward pass returns both. Texts are
sorted by token length and padded per batch (dynamic padding), which on CPU is several
times faster than padding everything to ``max_length``; results come back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from signal_al.classifier.config import ClassifierConfig
from signal_al.core.run_state import text_pairs

__all__ = ["ClassifierOutputs", "predict", "predict_rows"]


class ClassifierOutputs(NamedTuple):
    """Per-item outputs, rows in the order of the input texts."""

    probs: np.ndarray
    """(n, C) float32 softmax probabilities."""
    embeddings: np.ndarray
    """(n, H) float32 input of the classification head (BERT: the pooled [CLS] vector)."""


def _head(model: torch.nn.Module) -> torch.nn.Module:
    for name in ("classifier", "score"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    raise ValueError(
        f"model: {type(model).__name__} has no `classifier` or `score` head; "
        "pass an AutoModelForSequenceClassification model"
    )


def predict(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    *,
    batch_size: int = 128,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> ClassifierOutputs:
    """Probabilities and pooled embeddings of ``texts`` (or text pairs) from one forward pass.

    The embedding is whatever the model's classification head receives (captured with a
    forward pre-hook): BERT's pooled [CLS] output, DistilBERT's pre-classifier activation,
    or position 0 of the hidden states for heads that take the whole sequence (RoBERTa).
    The model is moved to ``device`` (when given) and put in eval mode; gradients are never recorded.
    """
    texts = list(texts)
    if any(not isinstance(t, str) for t in texts):
        raise ValueError("texts: every item must be a string")
    if text_pairs is not None:
        text_pairs = list(text_pairs)
        if len(text_pairs) != len(texts):
            raise ValueError(f"text_pairs: has {len(text_pairs)} items but texts has {len(texts)}")
        if any(not isinstance(t, str) for t in text_pairs):
            raise ValueError("text_pairs: every item must be a string")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be positive, got {batch_size}")
    head = _head(model)
    n_classes = int(model.config.num_labels)
    hidden = int(getattr(model.config, "hidden_size", 0) or 0)
    if not texts:
        return ClassifierOutputs(np.zeros((0, n_classes), np.float32), np.zeros((0, hidden), np.float32))

    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).eval()  # a checkpoint loads on the CPU; the batches go to ``device`` (seen failing on a GPU)
    encoded = tokenizer(texts, text_pairs, truncation=True, max_length=max_length)
    lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")  # longest first: the memory peak shows up at once
    captured: list[torch.Tensor] = []

    def grab(_module, args):
        x = args[0]
        captured.append(x[:, 0] if x.dim() == 3 else x)

    probs = np.empty((len(texts), n_classes), dtype=np.float32)
    embeddings: np.ndarray | None = None
    handle = head.register_forward_pre_hook(grab)
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                features = [{key: encoded[key][i] for key in encoded.keys()} for i in rows]
                batch = tokenizer.pad(features, return_tensors="pt")
                batch = {key: value.to(device) for key, value in batch.items()}
                captured.clear()
                logits = model(**batch).logits
                emb = captured[-1].float().cpu().numpy()
                if embeddings is None:
                    embeddings = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
                probs[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                embeddings[rows] = emb
    finally:
        handle.remove()
    return ClassifierOutputs(probs, embeddings)


def predict_rows(model: torch.nn.Module, tokenizer, rows: Sequence[Any], config: ClassifierConfig, *,
                 device: str | torch.device | None = None) -> ClassifierOutputs:
    """:func:`predict` over ``rows`` (items, candidates: their ``text`` and ``text_pair``) with the
    inference settings of the ``classifier`` section."""
    return predict(model, tokenizer, [row.text for row in rows], text_pairs(rows), batch_size=config.eval_batch_size,
                   max_length=config.max_length, device=device)
