"""The active-learning loop: the only place that knows the order of a round's steps.

Round r: (r = 0: a random seed set | r > 0: one classifier pass over U ∪ L, then the
strategy selects b items) → annotate → add to L with provenance → retrain the classifier →
evaluate on the test split → persist the round atomically.

SIGnAL (``strategy: signal``) adds the generator from round 1 on (round 0 has no labeled
set to score against, so it is the same random real seed set as every baseline): before
the classifier pass, b candidates from the current adapter (the base model in round 1)
join the pool as synthetic items and are persisted at once; after evaluation, the round's
candidates with their scores from that same pass form D_RL, one PPO update writes
``adapters/round-NNN``, and the round is committed with that adapter path before the
adapter is hot-loaded for the next round. A resumed run reloads the latest adapter.

Every round is a pure function of the previous round's persisted state, the seed and the
round number (its RNG is ``default_rng([seed, r])``, its training seed ``seed·1000 + r``,
and the selection uses the classifier checkpoint saved by round r − 1). So a run killed at
any point and resumed ends with the same labeled set and metrics as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml
from tqdm.auto import tqdm

from signal_al.config import ExperimentConfig
from signal_al.config_io import from_dict, to_dict
from signal_al.data import TaskData, load_task, real_pool
from signal_al.data.pools import Annotation, Item, as_dataset, real_items
from signal_al.errors import ConfigError, UserError
from signal_al.io_utils import atomic_directory, atomic_write_json, atomic_write_jsonl, atomic_write_text
from signal_al.rl_round import (CANDIDATES_FILE, RL_DIR, adapter_dir, adapter_round, generation_stats, reward_stats,
                                rl_dataset, shuffled_scores, synthetic_items)

STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
LABELED_FILE = "labeled.jsonl"
TIMING_KEYS = ("seconds",)  # metric keys that differ between otherwise identical runs


@dataclass
class RunState:
    """Everything a run needs to continue: written whole, atomically, after every round."""

    round: int = -1
    pool_size: int = 0
    items: list[Item] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    checkpoint: str | None = None
    pending: dict | None = None
    finished: bool = False
    adapter: str | None = None  # run-relative folder of the generator's latest adapter (SIGnAL)
    generation: dict | None = None  # the current round's candidates (and scores), until the round commits

    def to_dict(self) -> dict:
        return {"round": self.round, "pool_size": self.pool_size, "items": [i.to_dict() for i in self.items],
                "annotations": [a.to_dict() for a in self.annotations], "metrics": self.metrics,
                "checkpoint": self.checkpoint, "pending": self.pending, "finished": self.finished,
                "adapter": self.adapter, "generation": self.generation}

    @classmethod
    def from_dict(cls, data: dict) -> "RunState":
        return cls(round=data["round"], pool_size=data["pool_size"], items=[Item(**i) for i in data["items"]],
                   annotations=[Annotation(**a) for a in data["annotations"]], metrics=data["metrics"],
                   checkpoint=data["checkpoint"], pending=data["pending"], finished=data["finished"],
                   adapter=data.get("adapter"), generation=data.get("generation"))

    @property
    def labeled_ids(self) -> set[str]:
        return {a.id for a in self.annotations}


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5 + 1e-9))


def round_budget(pool_size: int, round_fraction: float) -> int:
    """Nominal items per round: a fraction of the real pool, at least one."""
    return max(1, _round_half_up(round_fraction * pool_size))


def round_targets(pool_size: int, round_fraction: float, total: int, seed_size: int | None = None) -> list[int]:
    """Cumulative labeled-set size after each round, ending at ``total``.

    Targets are rounded from the exact grid (seed set = round 0, then +round_fraction of the
    pool per round), not summed from a rounded per-round budget, so a pool of 85 at 10 %
    reaches 17 / 34 / 51 ... = 20 / 40 / 60 % instead of drifting to 16 / 32 / 48.
    """
    step = max(round_fraction * pool_size, 1.0)
    offset = 0.0 if seed_size is None else seed_size - step
    targets: list[int] = []
    index = 0
    while not targets or targets[-1] < total:
        target = min(total, max(_round_half_up(offset + (index + 1) * step), targets[-1] + 1 if targets else 0))
        targets.append(target)
        index += 1
    return targets


def target_pct(round_index: int, round_fraction: float, seed_size: int | None, pool_size: int) -> float:
    """The round's nominal position on the acquisition grid, in % of the real pool."""
    seed_pct = round_fraction * 100.0 if seed_size is None else 100.0 * seed_size / pool_size
    return round(seed_pct + round_index * round_fraction * 100.0, 4)


def total_budget(pool_size: int, stop_fraction: float, *, pool_based: bool) -> int:
    """All annotations of a run; pool-based strategies cannot exceed the pool."""
    total = int(round(stop_fraction * pool_size))
    return min(total, pool_size) if pool_based else total


def method_name(config: ExperimentConfig) -> str:
    """The name a run's rows carry: its strategy, signal-frozen / signal-shuffled for the ablations,
    a ``-share<start>-<end>`` suffix for SIGnAL with a real -> synthetic budget schedule, and
    ``+<variant>`` when ``active_learning.variant`` labels the settings."""
    al = config.active_learning
    name = al.strategy
    if al.strategy == "signal":
        name = "signal" if al.generator_update == "ppo" else f"signal-{al.generator_update}"
        if al.synthetic_share is not None:
            name += "-share{:g}-{:g}".format(*al.synthetic_share)
    return f"{name}+{al.variant}" if al.variant else name


def same_run(a: dict, b: dict) -> bool:
    """Two metrics rows agree apart from wall times."""
    strip = lambda row: {k: v for k, v in row.items() if k not in TIMING_KEYS}  # noqa: E731
    return strip(a) == strip(b)


class ActiveLearningRun:
    """One run of one strategy with one seed, persisted in ``config.run_dir``."""

    def __init__(self, config: ExperimentConfig, *, cache_root: Path | None = None, progress: bool = True,
                 log: Callable[[str], None] = print) -> None:
        self.config = config
        self.cache_root = cache_root
        self.progress = progress
        self.log = log
        self.run_dir = config.run_dir
        self._data: TaskData | None = None
        self._hidden: dict[str, int] = {}
        self._tokenizer: Any = None
        self._annotator: Any = None
        self._generator: Any = None
        self._resources = contextlib.ExitStack()  # the vLLM server started for this run, if any

    # --- persistence -----------------------------------------------------------------------

    @staticmethod
    def load_config(run_dir: Path) -> ExperimentConfig:
        path = run_dir / CONFIG_FILE
        if not path.is_file():
            raise UserError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
        return from_dict(ExperimentConfig, yaml.safe_load(path.read_text()))

    def _load_state(self) -> RunState | None:
        path = self.run_dir / STATE_FILE
        return RunState.from_dict(json.loads(path.read_text())) if path.is_file() else None

    def _persist(self, state: RunState) -> None:
        """state.json is the commit point; the JSONL files are views rewritten from it."""
        atomic_write_json(self.run_dir / STATE_FILE, state.to_dict())
        items = {item.id: item for item in state.items}
        atomic_write_jsonl(self.run_dir / LABELED_FILE, [
            {**items[a.id].to_dict(), "label": a.label, "label_name": self.data.spec.label_names[a.label],
             "acquired_round": a.round, "annotator": a.annotator} for a in state.annotations])
        atomic_write_jsonl(self.run_dir / METRICS_FILE, state.metrics)

    # --- lazily loaded parts ---------------------------------------------------------------

    @property
    def data(self) -> TaskData:
        if self._data is None:
            self._data = load_task(self.config.data, cache_root=self.cache_root)
        return self._data

    @property
    def device(self) -> Any:
        from signal_al.runtime import resolve_device

        return resolve_device(self.config.device)

    def _model_source(self) -> str:
        from signal_al.assets import resolve_model

        return resolve_model(self.config.classifier.model, self.cache_root)

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from signal_al.trainers.classifier_trainer import load_tokenizer

            self._tokenizer = load_tokenizer(self._model_source())
        return self._tokenizer

    def strategy(self) -> Any:
        from signal_al.strategies import get_strategy

        name = self.config.active_learning.strategy
        if name == "signal":
            reward = self.config.reward
            return get_strategy(name, k=reward.k, kl_direction=reward.kl_direction, eps=reward.eps,
                                normalize=reward.normalize, approximate=reward.approximate)
        return get_strategy(name)

    # --- the round -------------------------------------------------------------------------

    def _initial_state(self) -> RunState:
        pool = real_pool(self.data, self.config.data, seed=self.config.seed)
        return RunState(pool_size=len(pool), items=real_items(pool))

    def _hidden_labels(self) -> dict[str, int]:
        if not self._hidden:
            pool = real_pool(self.data, self.config.data, seed=self.config.seed)
            self._hidden = dict(zip(pool.ids, pool.labels.tolist()))
        return self._hidden

    def _select(self, state: RunState, round_index: int, budget: int, rng: np.random.Generator,
                synthetic_share: float | None = None) -> tuple[list[Item], dict[str, float]]:
        """The items to annotate this round (random seed set, then the strategy's choice) and,
        for ranking strategies, every unlabeled item's score from the same classifier pass.
        With ``synthetic_share`` that share of the budget goes to the top synthetic items."""
        labeled = state.labeled_ids
        unlabeled = [i for i, item in enumerate(state.items) if item.id not in labeled]
        if round_index == 0:
            chosen = rng.choice(len(unlabeled), size=budget, replace=False)
            return [state.items[unlabeled[i]] for i in np.sort(chosen)], {}
        from signal_al.classifier import predict
        from signal_al.strategies.base import PoolView, RankingStrategy, top_indices
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(self.run_dir / state.checkpoint)
        pairs = [item.text_pair for item in state.items]
        outputs = predict(model, self.tokenizer(), [item.text for item in state.items],
                          None if all(p is None for p in pairs) else [p or "" for p in pairs],
                          batch_size=self.config.classifier.eval_batch_size,
                          max_length=self.config.classifier.max_length, device=self.device)
        position = {item.id: i for i, item in enumerate(state.items)}
        labels = np.zeros(len(state.items), dtype=np.int64)
        for annotation in state.annotations:
            labels[position[annotation.id]] = annotation.label
        view = PoolView(probs=outputs.probs, embeddings=outputs.embeddings, labels=labels,
                        labeled=np.array(sorted(position[i] for i in labeled), dtype=np.int64),
                        unlabeled=np.array(unlabeled, dtype=np.int64))
        strategy = self.strategy()
        scores: dict[str, float] = {}
        if isinstance(strategy, RankingStrategy):  # what RankingStrategy.query does, keeping the scores
            values = strategy.score(view, strategy.check_budget(view, budget), rng)
            if synthetic_share is None:
                chosen = view.unlabeled[top_indices(values, budget, rng)]
            else:
                from signal_al.strategies.synthetic_share import split_top_indices

                synthetic = np.array([state.items[int(i)].source == "synthetic" for i in view.unlabeled])
                chosen = view.unlabeled[split_top_indices(values, synthetic, budget, synthetic_share, rng)]
            scores = {state.items[int(i)].id: float(v) for i, v in zip(view.unlabeled, values)}
        else:
            chosen = strategy.query(view, budget, rng)
        return [state.items[int(i)] for i in chosen], scores

    def _annotate(self, state: RunState, round_index: int, items: list[Item]) -> list[Annotation]:
        """Labels for the selected items, from files when a human annotates."""
        from signal_al.oracle import AnnotationRequired, GroundTruthAnnotator, export_batch, import_labels

        names = self.data.spec.label_names
        if self.config.active_learning.annotator == "human":
            batch_file = self.run_dir / "annotation" / f"round_{round_index:03d}.csv"
            ids = [item.id for item in items]
            if state.pending is None:
                export_batch(items, batch_file, names)
                state.pending = {"round": round_index, "ids": ids, "file": str(batch_file.relative_to(self.run_dir))}
                self._persist(state)
                raise AnnotationRequired(batch_file, len(items), self.run_dir)
            labels = import_labels(batch_file, ids, names)
            return [Annotation(i, labels[i], round_index, "human") for i in ids]
        real = [item for item in items if item.source == "real"]
        synthetic = [item for item in items if item.source == "synthetic"]
        given = dict(zip([i.id for i in real], GroundTruthAnnotator(self._hidden_labels()).annotate(real)))
        if synthetic:
            given.update(zip([i.id for i in synthetic], self.model_annotator().annotate(synthetic)))
        annotator = {item.id: "ground_truth" if item.source == "real" else "model" for item in items}
        return [Annotation(item.id, given[item.id], round_index, annotator[item.id]) for item in items]

    def model_annotator(self) -> Any:
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

    def _train_and_evaluate(self, state: RunState, round_index: int) -> tuple[Any, dict]:
        from signal_al.classifier import predict
        from signal_al.evaluation.metrics import class_balance, classification_metrics
        from signal_al.trainers.classifier_trainer import load_classifier, train_classifier

        items = {item.id: item for item in state.items}
        labeled_items = [items[a.id] for a in state.annotations]
        labels = [a.label for a in state.annotations]
        config = self.config
        from signal_al.runtime import seed_everything

        seed_everything(config.seed * 1000 + round_index)  # the new head's initialisation
        model = load_classifier(self._model_source(), self.data.spec.label_names)
        stats = train_classifier(model, self.tokenizer(), as_dataset(labeled_items, labels), config.classifier,
                                 seed=config.seed * 1000 + round_index, device=self.device, progress=self.progress)
        test = self.data.test
        outputs = predict(model, self.tokenizer(), test.texts, test.text_pairs,
                          batch_size=config.classifier.eval_batch_size, max_length=config.classifier.max_length,
                          device=self.device)
        metrics = classification_metrics(test.labels, outputs.probs.argmax(axis=1), self.data.spec.label_names)
        n_synthetic = sum(items[a.id].source == "synthetic" for a in state.annotations)
        row = {
            "round": round_index,
            "strategy": method_name(config),
            "seed": config.seed,
            "n_labeled": len(labels),
            "n_real": len(labels) - n_synthetic,
            "n_synthetic": n_synthetic,
            "acquired_pct": round(100.0 * len(labels) / state.pool_size, 4),
            "target_pct": target_pct(round_index, config.active_learning.round_fraction,
                                     config.active_learning.seed_size, state.pool_size),
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "per_class": metrics["per_class"],
            **class_balance(np.asarray(labels), self.data.spec.num_labels),
            "train_steps": stats.steps,
            "train_loss": stats.final_loss,
        }
        return model, row

    def _save_checkpoint(self, model: Any, round_index: int) -> str:
        name = f"checkpoints/classifier-round-{round_index:03d}"
        with atomic_directory(self.run_dir / name) as staging:
            model.save_pretrained(staging)
        return name

    def _remove_stale_checkpoints(self, keep: str) -> None:
        folder = self.run_dir / "checkpoints"
        for path in folder.glob("*"):
            if path.name != Path(keep).name:
                shutil.rmtree(path, ignore_errors=True)

    # --- SIGnAL: the generator ----------------------------------------------------------------

    def _generates(self, round_index: int) -> bool:
        """SIGnAL generates from round 1 on: round 0 has no labeled set to score candidates against."""
        return self.config.active_learning.strategy == "signal" and round_index >= 1

    def generator(self, state: RunState) -> Any:
        """The candidate generator (its server started on first use), serving the latest adapter."""
        if self._generator is None:
            from signal_al.generation.generator import create_generator
            from signal_al.serving import managed_server

            self._resources.enter_context(managed_server(
                self.config.generator, log_file=self.run_dir / "vllm-server.log", log=self.log))
            self._generator = create_generator(self.config.generator, self.data.spec, seed=self.config.seed,
                                               device=str(self.device))
            if state.adapter is not None:  # a resumed run: the server may be new, reload the adapter
                self._generator.load_adapter(self.run_dir / state.adapter, adapter_round(state.adapter))
        return self._generator

    def _generate(self, state: RunState, round_index: int, num: int) -> None:
        """Step 2: candidates join the pool as synthetic items, committed before the classifier pass."""
        from signal_al.generation.cleaning import dedup_key
        from signal_al.generation.records import read_jsonl

        pool = real_pool(self.data, self.config.data, seed=self.config.seed)
        known = [dedup_key(item.text, item.text_pair) for item in state.items]  # R ∪ S ∪ L
        candidates = self.generator(state).generate(pool, num, known=known, round_index=round_index)
        state.items.extend(synthetic_items(candidates, round_index))
        state.generation = {"round": round_index, "candidates": [c.to_dict() for c in candidates], "scores": None}
        path = self.run_dir / CANDIDATES_FILE  # rewritten whole, so a repeated round leaves no duplicates
        earlier = [c.to_dict() for c in read_jsonl(path) if (c.round or 0) < round_index] if path.is_file() else []
        atomic_write_jsonl(path, earlier + state.generation["candidates"])
        self._persist(state)

    def _update_generator(self, state: RunState, round_index: int) -> tuple[str | None, dict]:
        """Step 7: D_RL from this round's candidates and scores, one PPO update; (adapter folder, metrics)."""
        from signal_al.assets import resolve_model
        from signal_al.generation.records import Candidate
        from signal_al.trainers.ppo_trainer import train_generator
        from signal_al.trainers.rollouts import write_rollouts

        assert state.generation is not None
        candidates = [Candidate.from_dict(c) for c in state.generation["candidates"]]
        scores = state.generation["scores"]
        row = {**generation_stats(candidates), **reward_stats(candidates, scores, round_index)}
        update = self.config.active_learning.generator_update
        if update == "frozen":
            return state.adapter, row
        if update == "shuffled":
            scores = shuffled_scores(scores, np.random.default_rng([self.config.seed, round_index, 1]))
        rollouts = rl_dataset(candidates, scores, round_index, self.config.reward.invalid_penalty,
                              self.config.reward.whiten_kept)
        if not rollouts:
            self.log(f"round {round_index}: no candidate to learn from; the generator keeps its adapter")
            return state.adapter, row
        write_rollouts(self.run_dir / RL_DIR / f"round-{round_index:03d}.jsonl", rollouts)
        config = self.config
        # a seed per round; PPO's log-probs must use the temperature the candidates were sampled with
        ppo = dataclasses.replace(config.ppo, seed=config.seed * 1000 + round_index,
                                  temperature=config.generator.temperature or config.ppo.temperature)
        name = adapter_dir(round_index)
        previous = None if state.adapter is None else self.run_dir / state.adapter
        if ppo.launcher == "accelerate":
            from signal_al.trainers.ppo_launch import launch_command, run_update_job

            rl_file = self.run_dir / RL_DIR / f"round-{round_index:03d}.jsonl"
            command = launch_command(self.run_dir / CONFIG_FILE, resolve_model(config.generator.model), rl_file,
                                     self.run_dir / name, ppo, adapter=previous)
            self.log(f"round {round_index}: PPO update as an accelerate job (log: {rl_file.with_suffix('.log')})")
            metrics = run_update_job(command, self.run_dir / name, rl_file.with_suffix(".log"), ppo)
        else:
            metrics = train_generator(resolve_model(config.generator.model), rollouts, self.run_dir / name, ppo,
                                      adapter=previous, cpu=self.device.type == "cpu", overwrite=True,
                                      log=self.log if self.progress else None)
        row.update({"kl": metrics["kl_final"], "kl_start": metrics["kl_start"], "kl_coef": metrics["kl_coef"],
                    "ppo_policy_loss": metrics["policy_loss"], "ppo_value_loss": metrics["value_loss"],
                    "ppo_steps": metrics["optimizer_steps"], "n_rollouts": len(rollouts), "adapter": name})
        return name, row

    # --- driver ----------------------------------------------------------------------------

    def run(self, *, resume: bool = False) -> RunState:
        """Run (or continue) rounds until the annotation budget is spent."""
        config = self.config
        state = self._load_state()
        self.strategy()  # an unknown strategy name fails here, before any work
        if state is not None and not resume:
            raise UserError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another name")
        if state is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / CONFIG_FILE, yaml.safe_dump(to_dict(config), sort_keys=False))
            state = self._initial_state()
            self._persist(state)
        al = config.active_learning
        pool_based = al.strategy != "signal"
        total = total_budget(state.pool_size, al.stop_fraction, pool_based=pool_based)
        if al.seed_size is not None and al.seed_size > state.pool_size:
            raise ConfigError(f"active_learning.seed_size={al.seed_size} exceeds the real pool of {state.pool_size}")
        targets = round_targets(state.pool_size, al.round_fraction, total, al.seed_size)
        rounds_total = len(targets)
        if state.finished and len(state.annotations) < total and not (
                pool_based and len(state.annotations) >= len(state.items)):
            # a larger stop_fraction continues a finished run (e.g. a grid first run to 100 %, then to 200 %)
            self.log(f"extending the finished run from {len(state.annotations)} to {total} labels "
                     f"(active_learning.stop_fraction {al.stop_fraction})")
            atomic_write_text(self.run_dir / CONFIG_FILE, yaml.safe_dump(to_dict(config), sort_keys=False))
            state.finished = False
        if not pool_based and al.annotator == "model" and not state.finished:
            self.model_annotator()  # trained (once) before a vLLM server competes for the CPU
        from signal_al.strategies.synthetic_share import scheduled_share
        from signal_al.tracking import Tracker

        tracker = Tracker(config, self.run_dir)
        bar = tqdm(total=rounds_total, initial=state.round + 1, desc=f"{al.strategy} rounds", unit="round",
                   disable=not self.progress)
        try:
            while not state.finished:
                round_index = state.round + 1
                acquired = len(state.annotations)
                target = targets[min(round_index, len(targets) - 1)]
                budget = max(0, target - acquired)
                timings: dict[str, float] = {}
                generating = self._generates(round_index) and budget > 0
                if generating and (state.generation or {}).get("round") != round_index:
                    start = time.perf_counter()
                    self._generate(state, round_index, config.generator.candidates_per_round or budget)
                    timings["generate"] = time.perf_counter() - start
                unlabeled = len(state.items) - acquired
                budget = min(budget, unlabeled)
                if budget <= 0:
                    state.finished = True
                    self._persist(state)
                    break
                start = time.perf_counter()
                share = (scheduled_share(round_index, rounds_total, al.synthetic_share)
                         if generating and al.synthetic_share is not None else None)
                if state.pending is not None and state.pending["round"] == round_index:
                    positions = {item.id: item for item in state.items}
                    selected = [positions[i] for i in state.pending["ids"]]
                else:
                    selected, scores = self._select(state, round_index, budget,
                                                    np.random.default_rng([config.seed, round_index]), share)
                    if generating:  # this round's candidates keep their scores from this pass, for D_RL
                        assert state.generation is not None
                        fresh = {item.id for item in state.items
                                 if item.source == "synthetic" and item.round == round_index}
                        state.generation["scores"] = {i: v for i, v in scores.items() if i in fresh}
                timings["select"] = time.perf_counter() - start
                start = time.perf_counter()
                annotations = self._annotate(state, round_index, selected)
                timings["annotate"] = time.perf_counter() - start
                if state.labeled_ids & {a.id for a in annotations}:
                    raise RuntimeError("an item was selected twice (a bug, please report it)")
                state.annotations.extend(annotations)
                start = time.perf_counter()
                model, row = self._train_and_evaluate(state, round_index)
                timings["train_eval"] = time.perf_counter() - start
                adapter = state.adapter
                if generating:
                    start = time.perf_counter()
                    adapter, rl_row = self._update_generator(state, round_index)
                    timings["ppo"] = time.perf_counter() - start
                    row.update(rl_row)
                    row["n_synthetic_selected"] = sum(item.source == "synthetic" for item in selected)
                    if share is not None:
                        row["synthetic_share"] = round(share, 6)
                row["seconds"] = {k: round(v, 3) for k, v in timings.items()}
                checkpoint = self._save_checkpoint(model, round_index)
                state.round, state.checkpoint, state.pending = round_index, checkpoint, None
                state.adapter, state.generation = adapter, None
                state.metrics.append(row)
                # SIGnAL's pool grows every round, so only the budget ends it
                state.finished = len(state.annotations) >= total or (
                    pool_based and len(state.annotations) >= len(state.items))
                self._persist(state)
                self._remove_stale_checkpoints(checkpoint)
                if generating and adapter is not None and not state.finished:
                    self.generator(state).load_adapter(self.run_dir / adapter, round_index)  # hot-load for next round
                tracker.log(row, step=round_index)
                bar.update(1)
                bar.set_postfix(labeled=row["n_labeled"], acc=f"{row['accuracy']:.3f}")
                self.log(f"round {round_index}: {row['n_labeled']} labeled ({row['acquired_pct']:.0f}% of pool), "
                         f"accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}")
        finally:
            bar.close()
            tracker.finish()
            if self._generator is not None:
                self._generator.backend.close()
                self._generator = None
            self._resources.close()  # stops a server this run started
        return state


def saved_config(run_dir: Path) -> ExperimentConfig:
    """The config a run saved, pointed at ``run_dir`` (the folder may have been moved)."""
    config = ActiveLearningRun.load_config(run_dir)
    if Path(config.output_dir) / config.name != run_dir:
        config.output_dir, config.name = str(run_dir.parent), run_dir.name
    return config


def resume_run(run_dir: Path, **kwargs: Any) -> RunState:
    """Continue the run saved in ``run_dir`` with its own saved config."""
    return ActiveLearningRun(saved_config(run_dir), **kwargs).run(resume=True)


__all__ = ["ActiveLearningRun", "RunState", "method_name", "resume_run", "round_budget", "round_targets", "same_run", "saved_config", "target_pct", "total_budget"]
