"""SIGnAL scores for texts: the classifier's outputs fed to :func:`signal_scores`.

Generated candidates are scored many times against the same labeled set (every reward
call of an RL step), so the labeled set's probabilities, embeddings and kNN index are
computed once and cached until the labeled set or the classifier changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from signal_al.classifier import predict
from signal_al.config import RewardConfig
from signal_al.rewards.knn import LabeledIndex
from signal_al.rewards.score import SignalScores, prepare_embeddings, signal_scores

__all__ = ["SignalScorer"]


class SignalScorer:
    """Callable ``texts -> scores`` with the classifier and labeled set bound.

    Args:
        model: an ``AutoModelForSequenceClassification`` (the current round's classifier).
        tokenizer: its tokenizer.
        labeled_texts: the labeled set's texts (first segment for pair tasks).
        labeled_pairs: second segments for pair tasks.
        config: the ``reward`` config section; the keyword arguments below override it.
        k, kl_direction, eps, normalize, approximate: as in :func:`signal_scores`.
        batch_size, max_length, device: classifier inference settings.
    """

    def __init__(
        self,
        model,
        tokenizer,
        labeled_texts: Sequence[str],
        labeled_pairs: Sequence[str] | None = None,
        *,
        config: RewardConfig | None = None,
        k: int | None = None,
        kl_direction: str | None = None,
        eps: float | None = None,
        normalize: bool | None = None,
        approximate: bool | None = None,
        batch_size: int = 128,
        max_length: int = 128,
        device: str | None = None,
    ) -> None:
        cfg = config if config is not None else RewardConfig()
        self.model = model
        self.tokenizer = tokenizer
        self.k = cfg.k if k is None else k
        self.kl_direction = cfg.kl_direction if kl_direction is None else kl_direction
        self.eps = cfg.eps if eps is None else eps
        self.normalize = cfg.normalize if normalize is None else normalize
        self.approximate = bool(getattr(cfg, "approximate", False) if approximate is None else approximate)
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._cache: tuple[np.ndarray, LabeledIndex] | None = None
        self.set_labeled(labeled_texts, labeled_pairs)

    @property
    def labeled_texts(self) -> list[str]:
        return list(self._labeled_texts)

    def set_labeled(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> None:
        """Replace the labeled set; its features are recomputed on the next call."""
        texts = list(texts)
        if not texts:
            raise ValueError("labeled_texts: the labeled set is empty; scores need at least one labeled item")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"labeled_pairs: has {len(pairs)} items but labeled_texts has {len(texts)}")
        self._labeled_texts = texts
        self._labeled_pairs = list(pairs) if pairs is not None else None
        self._cache = None

    def refresh(self) -> None:
        """Forget the cached labeled features (call after the classifier was retrained)."""
        self._cache = None

    def labeled_features(self) -> tuple[np.ndarray, LabeledIndex]:
        """(probs_l, index over the labeled embeddings), computed once per labeled set and model."""
        if self._cache is None:
            out = self._predict(self._labeled_texts, self._labeled_pairs)
            emb = prepare_embeddings("labeled embeddings", out.embeddings, normalize=self.normalize)
            self._cache = (out.probs, LabeledIndex(emb, approximate=self.approximate))
        return self._cache

    def score(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, return_neighbors: bool = False
    ) -> np.ndarray | SignalScores:
        """SIGnAL scores of ``texts`` against the labeled set (see :func:`signal_scores`)."""
        texts = list(texts)
        if not texts:
            empty = np.zeros(0, dtype=np.float64)
            k = min(self.k, len(self._labeled_texts))
            if return_neighbors:
                return SignalScores(empty, np.zeros((0, k), np.int64), np.zeros((0, k), np.float64))
            return empty
        probs_l, index = self.labeled_features()
        out = self._predict(texts, pairs)
        return signal_scores(
            out.probs, out.embeddings, probs_l, None, k=self.k, kl_direction=self.kl_direction, eps=self.eps,
            normalize=self.normalize, return_neighbors=return_neighbors, index=index,
        )

    __call__ = score

    def _predict(self, texts: list[str], pairs: Sequence[str] | None):
        return predict(self.model, self.tokenizer, texts, pairs, batch_size=self.batch_size,
                       max_length=self.max_length, device=self.device)
