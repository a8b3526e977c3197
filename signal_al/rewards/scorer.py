"""SIGnAL scores for texts: the classifier's outputs fed to :func:`signal_scores`.

Generated candidates are scored many times against the same labeled set (every reward
call of an RL step), so the labeled set's probabilities, embeddings and kNN index are
computed once and cached until the labeled set or the classifier changes. So are the mean
k-NN distances of the optional real reference texts that ``reward.relevance`` calibrates against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from signal_al.classifier.inference import predict
from signal_al.core.run_state import RunState, text_pairs
from signal_al.neighbors.divergence import neighbor_kl, safe_log
from signal_al.neighbors.knn import LabeledIndex
from signal_al.neighbors.validation import prepare_embeddings
from signal_al.rewards.relevance import knn_mean_distances, relevance_reference
from signal_al.rewards.score import ScoreParams, SignalScores, score_params, signal_scores

__all__ = ["ScoreDetails", "SignalScorer"]


class ScoreDetails(NamedTuple):
    """Scores with the parts they are made of (:meth:`SignalScorer.score_details`), one row per text."""

    scores: np.ndarray
    """(N,) the SIGnAL scores, identical to :meth:`SignalScorer.score`'s."""
    distance: np.ndarray
    """(N,) mean Euclidean distance to the k nearest labeled items."""
    kl: np.ndarray
    """(N,) mean KL divergence to their predictions (in ``kl_direction``)."""
    prediction: np.ndarray
    """(N,) int64 the classifier's predicted class."""
    confidence: np.ndarray
    """(N,) its probability."""


class SignalScorer:
    """Callable ``texts -> scores`` with the classifier and labeled set bound.

    Args:
        model: an ``AutoModelForSequenceClassification`` (the current round's classifier).
        tokenizer: its tokenizer.
        labeled_texts: the labeled set's texts (first segment for pair tasks).
        labeled_pairs: second segments for pair tasks.
        params: the score's parameters (:class:`~signal_al.rewards.score.ScoreParams`, e.g. the
            ``reward`` config section); ``overrides`` (``k=3``) replace single ones.
        reference_texts: real texts (e.g. the real unlabeled pool) whose mean k-NN distances to
            the labeled set calibrate the score; required unless ``relevance`` is ``"none"``.
        reference_pairs: their second segments for pair tasks.
        reference_labeled: the reference texts are labeled ones (the fallback of
            :func:`~signal_al.rewards.relevance.relevance_reference`), each measured without itself.
        batch_size, max_length, device: classifier inference settings.
    """

    def __init__(
        self,
        model,
        tokenizer,
        labeled_texts: Sequence[str],
        labeled_pairs: Sequence[str] | None = None,
        *,
        params: ScoreParams | None = None,
        reference_texts: Sequence[str] | None = None,
        reference_pairs: Sequence[str] | None = None,
        reference_labeled: bool = False,
        batch_size: int = 128,
        max_length: int = 128,
        device: str | None = None,
        **overrides: Any,
    ) -> None:
        self.params = score_params(params, **overrides)
        """The :class:`ScoreParams` every call uses."""
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._cache: tuple[np.ndarray, LabeledIndex] | None = None
        self._reference: np.ndarray | None = None
        self.run: Any = None
        """For :meth:`from_run`: the :class:`~signal_al.rewards.run_reward.RunReward` it was read from."""
        self.set_labeled(labeled_texts, labeled_pairs)
        self.set_reference(reference_texts, reference_pairs, labeled=reference_labeled)

    @classmethod
    def from_state(cls, model, tokenizer, state: RunState, *, round: int | None = None,
                   params: ScoreParams | None = None, batch_size: int = 128, max_length: int = 128,
                   device: Any = None) -> "SignalScorer":
        """The scorer of a run's state: its labeled set (the labels of rounds 0..``round``; all of them by
        default) and, for ``relevance``, the real items unlabeled by then
        (:func:`~signal_al.rewards.relevance.relevance_reference`). ``model`` is the classifier trained on
        exactly those labels, so the scores are the ones the next round's selection would give."""
        labeled = state.labeled_items(up_to_round=round)
        labeled_ids = {item.id for item in labeled}
        rows, self_included = relevance_reference([item.source == "real" for item in state.items],
                                                  [item.id in labeled_ids for item in state.items])
        reference = [state.items[int(i)] for i in rows]
        use_reference = score_params(params).relevance != "none" and bool(reference)
        return cls(model, tokenizer, [item.text for item in labeled], text_pairs(labeled), params=params,
                   reference_texts=[item.text for item in reference] if use_reference else None,
                   reference_pairs=text_pairs(reference) if use_reference else None,
                   reference_labeled=self_included, batch_size=batch_size, max_length=max_length, device=device)

    @classmethod
    def from_run(cls, run_dir: str | Path, round: int | None = None, *, device: Any = None,
                 batch_size: int | None = None, device_setting: str = "device") -> "SignalScorer":
        """The scorer of a run folder: round ``round``'s classifier checkpoint (default: the latest
        round), the labeled set it was trained on and the run's ``reward`` config.

        Pair tasks are scored with ``scorer(texts, pairs)``. ``scorer.run`` says what was read
        (round, checkpoint, label names). Raises :class:`~signal_al.core.errors.UserError` for a folder
        that is not a run, a run without a finished round, a round whose checkpoint is gone, or a
        device this machine does not have (named ``device_setting``, e.g. ``--device``).

        >>> scorer = SignalScorer.from_run("runs/demo")            # doctest: +SKIP
        >>> scorer(["a new review"])                               # doctest: +SKIP
        array([0.0123])
        """
        from signal_al.rewards.run_reward import read_run_reward

        parts = read_run_reward(run_dir, round, device=device, batch_size=batch_size, device_setting=device_setting)
        scorer = cls.from_state(parts.model, parts.tokenizer, parts.state, round=parts.info.round, params=parts.reward,
                                batch_size=parts.batch_size, max_length=parts.max_length, device=parts.device)
        scorer.run = parts.info
        return scorer

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
        self._reference = None

    def set_reference(self, texts: Sequence[str] | None, pairs: Sequence[str] | None = None, *,
                      labeled: bool = False) -> None:
        """Replace the real reference texts of ``relevance`` (``labeled``: they are labeled texts, each
        measured without itself); their distances are recomputed on the next call."""
        texts = None if texts is None else list(texts)
        if self.params.relevance != "none" and not texts:
            raise ValueError(f"reference_texts: relevance={self.params.relevance!r} needs real reference texts "
                             "(e.g. the real unlabeled pool)")
        if texts is not None and pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"reference_pairs: has {len(pairs)} items but reference_texts has {len(texts)}")
        self._reference_texts = texts
        self._reference_pairs = list(pairs) if pairs is not None else None
        self._reference_labeled = labeled
        self._reference = None

    def refresh(self) -> None:
        """Forget the cached labeled features (call after the classifier was retrained)."""
        self._cache = None
        self._reference = None

    def reference_distances(self) -> np.ndarray | None:
        """Mean k-NN distances of the reference texts to the labeled set (``None`` without relevance)."""
        if self.params.relevance == "none":
            return None
        if self._reference is None:
            _, index = self.labeled_features()
            out = self._predict(self._reference_texts, self._reference_pairs)
            self._reference = knn_mean_distances(out.embeddings, k=self.params.k, normalize=self.params.normalize,
                                                 index=index, exclude_self=self._reference_labeled)
        return self._reference

    def labeled_features(self) -> tuple[np.ndarray, LabeledIndex]:
        """(probs_l, index over the labeled embeddings), computed once per labeled set and model."""
        if self._cache is None:
            out = self._predict(self._labeled_texts, self._labeled_pairs)
            emb = prepare_embeddings("labeled embeddings", out.embeddings, normalize=self.params.normalize)
            self._cache = (out.probs, LabeledIndex(emb, approximate=self.params.approximate))
            self._reference = None
        return self._cache

    def score(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, return_neighbors: bool = False
    ) -> np.ndarray | SignalScores:
        """SIGnAL scores of ``texts`` against the labeled set (see :func:`signal_scores`)."""
        texts = list(texts)
        if not texts:
            empty = np.zeros(0, dtype=np.float64)
            k = min(self.params.k, len(self._labeled_texts))
            if return_neighbors:
                return SignalScores(empty, np.zeros((0, k), np.int64), np.zeros((0, k), np.float64))
            return empty
        probs_l, index = self.labeled_features()
        out = self._predict(texts, pairs)
        return signal_scores(out.probs, out.embeddings, probs_l, None, self.params, index=index,
                             return_neighbors=return_neighbors, reference_distances=self.reference_distances())

    __call__ = score

    def score_details(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> ScoreDetails:
        """:meth:`score` with its parts: mean neighbour distance and KL, and the prediction."""
        texts = list(texts)
        if not texts:
            empty = np.zeros(0, dtype=np.float64)
            return ScoreDetails(empty, empty, empty, np.zeros(0, np.int64), empty)
        probs_l, index = self.labeled_features()
        out = self._predict(texts, pairs)
        result = signal_scores(out.probs, out.embeddings, probs_l, None, self.params, index=index,
                               return_neighbors=True, reference_distances=self.reference_distances())
        probs_u = np.asarray(out.probs, dtype=np.float64)
        p_l = np.asarray(probs_l, dtype=np.float64)
        kl = neighbor_kl(probs_u, safe_log(probs_u), p_l, safe_log(p_l), result.neighbors, self.params.kl_direction)
        return ScoreDetails(result.scores, result.distances.mean(axis=1), kl.mean(axis=1),
                            out.probs.argmax(axis=1).astype(np.int64), out.probs.max(axis=1).astype(np.float64))

    def _predict(self, texts: list[str], pairs: Sequence[str] | None):
        return predict(self.model, self.tokenizer, texts, pairs, batch_size=self.batch_size,
                       max_length=self.max_length, device=self.device)
