"""Which items a round annotates, with every unlabeled item's score from the same classifier pass.

Round 0 is a random seed set (there is no classifier yet). Later rounds run the previous
round's classifier once over U ∪ L and hand the strategy a :class:`PoolView`; ranking
strategies also return their scores, which SIGnAL's generator is rewarded with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from signal_al.classifier.config import ClassifierConfig
from signal_al.core.run_state import Item, RunState
from signal_al.engine.context import RunContext
from signal_al.strategies.base import PoolView, QueryStrategy

__all__ = ["RoundSelection", "pool_view", "select_items"]


@dataclass
class RoundSelection:
    """The items to annotate, and ``scores[item id]`` for every unlabeled item (empty when the
    strategy does not rank)."""

    items: list[Item]
    scores: dict[str, float]


def pool_view(state: RunState, model: Any, tokenizer: Any, config: ClassifierConfig, *, device: Any) -> PoolView:
    """One classifier pass over every pool item (real and synthetic, labeled or not)."""
    from signal_al.classifier.inference import predict_rows

    outputs = predict_rows(model, tokenizer, state.items, config, device=device)
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


def select_items(context: RunContext, state: RunState, round_index: int, budget: int, strategy: QueryStrategy,
                 rng: np.random.Generator, *, synthetic_share: float | None = None) -> RoundSelection:
    """The round's items to annotate. From round 1 on the strategy sees the classifier saved by
    the previous round; with ``synthetic_share`` that share of the budget goes to the top
    synthetic items."""
    if round_index == 0:
        unlabeled = state.unlabeled_items()
        chosen = rng.choice(len(unlabeled), size=budget, replace=False)
        return RoundSelection([unlabeled[i] for i in np.sort(chosen)], {})
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(context.run_dir / state.checkpoint)
    view = pool_view(state, model, context.tokenizer, context.config.classifier, device=context.device)
    synthetic = np.array([state.items[int(i)].source == "synthetic" for i in view.unlabeled])
    selection = strategy.select(view, budget, rng, synthetic=synthetic, synthetic_share=synthetic_share)
    scores = {} if selection.scores is None else {
        state.items[int(i)].id: float(v) for i, v in zip(view.unlabeled, selection.scores)}
    return RoundSelection([state.items[int(i)] for i in selection.indices], scores)
