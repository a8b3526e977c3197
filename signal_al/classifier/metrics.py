"""Pure metrics of a round: classification quality, class balance of the acquired labels,
and diversity of generated text (distinct-n, self-BLEU). Functions of arrays and strings only."""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

__all__ = ["class_balance", "classification_metrics", "distinct_n", "self_bleu"]


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: tuple[str, ...] | list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 over all ``label_names``."""
    labels = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)
        },
    }


def class_balance(labels: np.ndarray, num_labels: int) -> dict:
    """Counts of each class among acquired labels and their standard deviation (lower = more balanced)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels)
    return {"class_counts": counts.tolist(), "class_count_std": float(np.std(counts))}


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the texts (word level); 0.0 when there are none.

    >>> distinct_n(["a b a b"], 2)
    0.6666666666666666
    """
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def self_bleu(texts: Sequence[str], max_n: int = 4, epsilon: float = 0.1) -> float | None:
    """Mean sentence BLEU of each text against all the others as references (lower = more diverse).

    Texygen's Self-BLEU with nltk's ``sentence_bleu`` semantics (neither package is a
    dependency): uniform weights over 1..``max_n``-grams, n-gram counts clipped by their
    largest count in any one reference, brevity penalty against the reference length
    closest to the hypothesis (ties: the shorter), 0 when no unigram matches, and
    smoothing method 1 (``epsilon`` / n-gram count for an order with no match). Words are
    whitespace tokens, as in :func:`distinct_n`. None for < 2 texts.

    >>> self_bleu(["a b c d", "a b c d"])
    1.0
    """
    tokens = [text.split() for text in texts]
    if len(tokens) < 2:
        return None
    counts = [[_ngrams(words, n) for n in range(1, max_n + 1)] for words in tokens]
    # per n-gram: [largest count, its text, second largest count], so that the largest count
    # among the *other* texts is found in O(1)
    top: list[dict[tuple, list[int]]] = [{} for _ in range(max_n)]
    for j, per_order in enumerate(counts):
        for order, grams in enumerate(per_order):
            for gram, count in grams.items():
                entry = top[order].get(gram)
                if entry is None:
                    top[order][gram] = [count, j, 0]
                elif count > entry[0]:
                    entry[:] = [count, j, entry[0]]
                elif count > entry[2]:
                    entry[2] = count
    lengths = np.array([len(words) for words in tokens])
    scores = []
    for i, per_order in enumerate(counts):
        hyp_len = int(lengths[i])
        others = np.delete(lengths, i)
        gaps = np.abs(others - hyp_len)
        closest = int(others[gaps == gaps.min()].min())
        log_precision = 0.0
        for order, grams in enumerate(per_order):
            matched = 0
            for gram, count in grams.items():
                best, owner, second = top[order][gram]
                matched += min(count, best if owner != i else second)
            if order == 0 and matched == 0:
                log_precision = -math.inf
                break
            denominator = max(1, sum(grams.values()))
            log_precision += math.log((matched or epsilon) / denominator) / max_n
        if log_precision == -math.inf:
            scores.append(0.0)
            continue
        brevity = 1.0 if hyp_len > closest else math.exp(1.0 - closest / hyp_len)
        scores.append(brevity * math.exp(log_precision))
    return float(np.mean(scores))
