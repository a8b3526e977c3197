"""Which items a round annotates, with every unlabeled item's score from the same classifier pass.

Round 0 is a random seed set (there is no classifier yet). Later rounds run the previous
round's classifier once over U ∪ L and hand the strategy a :class:`PoolView`; ranking
strategies also return their scores, which SIGnAL's generator is rewarded with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signal_al.data.pools import Item
from signal_al.engine.store import RunState
from signal_al.strategies.base import PoolView, QueryStrategy
from signal_al.classifier.config import ClassifierConfig

__all__ = ["RoundSelection", "pool_view", "select_items"]


@dataclass
class RoundSelection:
    """The items to annotate, and ``scores[item id]`` for every unlabeled item (empty when the
    strategy does not rank)."""

    items: list[Item]
    scores: dict[str, float]


def pool_view(state: RunState, model: Any, tokenizer: Any, config: ClassifierConfig, *, device: Any) -> PoolView:
    """One classifier pass over every pool item (real and synthetic, labeled or not)."""
    from signal_al.classifier.inference import predict

    pairs = [item.text_pair for item in state.items]
    outputs = predict(model, tokenizer, [item.text for item in state.items],
                      None if all(p is None for p in pairs) else [p or "" for p in pairs],
                      batch_size=config.eval_batch_size, max_length=config.max_length, device=device)
    position = {item.id: i for i, item in enumerate(state.items)}
    labels = np.zeros(len(state.items), dtype=np.int64)
    for annotation in state.annotations:
        labels[position[annotation.id]] = annotation.label
    labeled = state.labeled_ids
    return PoolView(probs=outputs.probs, embeddings=outputs.embeddings, labels=labels,
                    labeled=np.array(sorted(position[i] for i in labeled), dtype=np.int64),
                    unlabeled=np.array([i for i, item in enumerate(state.items) if item.id not in labeled],
                                       dtype=np.int64),
                    real=np.array([item.source == "real" for item in state.items]))


def select_items(state: RunState, round_index: int, budget: int, strategy: QueryStrategy, rng: np.random.Generator,
                 *, run_dir: Path, tokenizer: Any, config: ClassifierConfig, device: Any,
                 synthetic_share: float | None = None) -> RoundSelection:
    """The round's items to annotate. From round 1 on the strategy sees the classifier saved by
    the previous round; with ``synthetic_share`` that share of the budget goes to the top
    synthetic items."""
    labeled = state.labeled_ids
    unlabeled = [item for item in state.items if item.id not in labeled]
    if round_index == 0:
        chosen = rng.choice(len(unlabeled), size=budget, replace=False)
        return RoundSelection([unlabeled[i] for i in np.sort(chosen)], {})
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(run_dir / state.checkpoint)
    view = pool_view(state, model, tokenizer, config, device=device)
    synthetic = np.array([state.items[int(i)].source == "synthetic" for i in view.unlabeled])
    selection = strategy.select(view, budget, rng, synthetic=synthetic, synthetic_share=synthetic_share)
    scores = {} if selection.scores is None else {
        state.items[int(i)].id: float(v) for i, v in zip(view.unlabeled, selection.scores)}
    return RoundSelection([state.items[int(i)] for i in selection.indices], scores)
