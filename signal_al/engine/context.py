"""What a run works with, loaded on first use: the task's data, its real pool and hidden labels,
the classifier's tokenizer and source, the device and the model annotator.

Built once per run and handed to every step that needs more than its arguments (selection,
annotation, the generator plug-in); shared with generator evaluation, so both see the same pool
and annotator.
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

    @property
    def run_dir(self) -> Path:
        """The run folder (``output_dir/name``)."""
        return self.config.run_dir

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
        """The config's device; one this machine does not have is a ConfigError naming ``device``."""
        from signal_al.core.runtime import resolve_device

        return resolve_device(self.config.device)

    @cached_property
    def model_source(self) -> str:
        """The classifier's pretrained weights (an offline asset folder, checked intact, or a hub name)."""
        from signal_al.assets.registry import resolve_model

        return resolve_model(self.config.classifier.model, self.cache_root)

    @cached_property
    def tokenizer(self) -> Any:
        from signal_al.classifier.training import load_tokenizer
        from signal_al.core.errors import ConfigError

        try:
            return load_tokenizer(self.model_source)
        except (OSError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"classifier.model: cannot load the tokenizer of {self.model_source} ({first})") from None

    def fit_classifier(self, train: TextDataset, *, seed: int) -> Any:
        """A fresh classifier on ``train`` (this run's pretrained model, tokenizer, recipe and device),
        evaluated on the task's test split: a :class:`~signal_al.classifier.fit_eval.FitResult`."""
        from signal_al.classifier.fit_eval import fit_and_evaluate

        return fit_and_evaluate(self.model_source, self.tokenizer, train, self.data.test, self.label_names,
                                self.config.classifier, seed=seed, device=self.device, progress=self.progress)

    def check_machine(self, *, new: bool = True) -> None:
        """What the run needs from this machine, before it writes anything: the device; the classifier's
        model (an asset intact, a folder whole, a hub name readable offline) with room for
        ``classifier.max_length`` positions, and its tokenizer. A generating run's model too (where it
        runs here: any source, with room for ``generator.max_model_len`` when vLLM runs it; on someone
        else's server: a folder or asset named), vllm for the in-process backend, and for a ``new`` run
        whose servers it starts, free ports. Each problem is a one-line error naming its setting."""
        from signal_al.core.model_files import check_model
        from signal_al.engine.methods import uses_generator

        self.device
        check_model(self.model_source, "classifier.model", max_length=self.config.classifier.max_length,
                    length_setting="classifier.max_length")
        self.tokenizer
        if uses_generator(self.config.active_learning.strategy):
            self._check_generator(new=new)

    def _check_generator(self, *, new: bool) -> None:
        import importlib.util

        from signal_al.assets.registry import ASSETS, resolve_model
        from signal_al.core.errors import ConfigError, ServerError
        from signal_al.core.model_files import check_model
        from signal_al.generation.server.access import port_is_free, server_host_port
        from signal_al.generation.server.process import server_urls

        generator = self.config.generator
        here = generator.backend != "vllm-server" or generator.start_server
        vllm_here = generator.backend == "vllm" or (generator.backend == "vllm-server" and generator.start_server)
        named = generator.model in ASSETS or generator.model.startswith((".", "/", "~")) or Path(generator.model).exists()
        if here or named:  # vLLM started here gets max_model_len and refuses more than the model's positions
            check_model(resolve_model(generator.model, self.cache_root), "generator.model",
                        max_length=generator.max_model_len if vllm_here else None,
                        length_setting="generator.max_model_len")
        if generator.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ConfigError("generator.backend: vllm runs in this process, which has no vllm package; use "
                              "vllm-server (its own environment) or transformers, or `pip install 'signal-al[vllm]'`")
        if new and generator.backend == "vllm-server" and generator.start_server:
            for url in server_urls(generator):
                host, port = server_host_port(url)
                if not port_is_free(host, port):
                    raise ServerError(f"generator.server_url: port {port} on {host} is already in use, and this run "
                                      f"starts its own server there (generator.start_server); choose a free port")

    def model_annotator(self) -> Any:
        """The annotator of synthetic items: trained once per task and recipe, then cached on disk."""
        if self._annotator is None:
            from signal_al.assets.registry import cache_dir
            from signal_al.engine.annotation.oracle import load_or_train_model_annotator

            recipe = self.config.classifier
            cap = self.config.active_learning.annotator_max_steps
            if cap is not None:
                recipe = dataclasses.replace(recipe, max_steps=cap, min_steps=min(recipe.min_steps, cap))
            self._annotator = load_or_train_model_annotator(
                self.data, recipe, cache_root=cache_dir(self.cache_root),
                seed=self.config.data.split_seed, device=self.device, progress=self.progress)
            self.log(f"model annotator: test accuracy {self._annotator.info.test_accuracy:.3f}")
        return self._annotator
