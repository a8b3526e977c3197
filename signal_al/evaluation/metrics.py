"""Classification metrics and the class-balance measure of acquired labels (paper 000)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


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
