"""What a run works with, loaded on first use: the task's data, its real pool and hidden labels,
the classifier's tokenizer and source, the device and the model annotator.

Shared by the loop and by generator evaluation, so both see the same pool and annotator.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from signal_al.config import ExperimentConfig
from signal_al.data import TaskData, load_task, real_pool
from signal_al.data.task import TextDataset

__all__ = ["RunContext"]


class RunContext:
    """Lazily built resources of one run config. ``annotator`` replaces the model annotator
    (tests, or a user's own labeller with ``annotate(items) -> labels``)."""

    def __init__(self, config: ExperimentConfig, *, cache_root: Path | None = None, annotator: Any = None,
                 progress: bool = True, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.cache_root = cache_root
        self.progress = progress
        self.log = log
        self._annotator = annotator

    @cached_property
    def data(self) -> TaskData:
        return load_task(self.config.data, cache_root=self.cache_root)

    @cached_property
    def pool(self) -> TextDataset:
        """The real pool R of this seed."""
        return real_pool(self.data, self.config.data, seed=self.config.seed)

    @cached_property
    def hidden_labels(self) -> dict[str, int]:
        """Ground truth of the real pool, revealed only when an item is selected."""
        return dict(zip(self.pool.ids, self.pool.labels.tolist()))

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.data.spec.label_names

    @cached_property
    def device(self) -> Any:
        from signal_al.runtime import resolve_device

        return resolve_device(self.config.device)

    @cached_property
    def model_source(self) -> str:
        """The classifier's pretrained weights (an offline asset folder or a hub name)."""
        from signal_al.assets import resolve_model

        return resolve_model(self.config.classifier.model, self.cache_root)

    @cached_property
    def tokenizer(self) -> Any:
        from signal_al.trainers.classifier_trainer import load_tokenizer

        return load_tokenizer(self.model_source)

    def model_annotator(self) -> Any:
        """The annotator of synthetic items: trained once per task and recipe, then cached on disk."""
        if self._annotator is None:
            from signal_al.assets import cache_dir
            from signal_al.oracle import load_or_train_model_annotator

            recipe = self.config.classifier
            cap = self.config.active_learning.annotator_max_steps
            if cap is not None:
                recipe = dataclasses.replace(recipe, max_steps=cap, min_steps=min(recipe.min_steps, cap))
            self._annotator = load_or_train_model_annotator(
                self.data, recipe, cache_root=cache_dir(self.cache_root),
                seed=self.config.data.split_seed, device=self.device, progress=self.progress)
            self.log(f"model annotator: test accuracy {self._annotator.info.test_accuracy:.3f}")
        return self._annotator
