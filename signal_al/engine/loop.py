"""The active-learning loop: the only place that knows the order of a round's steps.

Round r of every method:

1. the generator proposes synthetic candidates (SIGnAL from round 1 on; a no-op otherwise),
   committed before anything reads them;
2. select: a random seed set in round 0, then one pass of the previous round's classifier
   over U ∪ L and the strategy's top items (with every unlabeled item's score);
3. the generator keeps its candidates' scores from that pass (D_RL);
4. annotate: ground truth for real items, the model annotator (or a person) for synthetic;
5. fit a fresh classifier on L and evaluate it on the test split;
6. the generator learns from D_RL (one PPO update; the new adapter is hot-loaded and
   compared with the base model on fixed held-out prompts);
7. commit the round atomically (state.json).

Every round is a pure function of the previous round's persisted state, the seed and the
round number (its RNG is ``default_rng([seed, r])``, its training seed ``seed·1000 + r``),
so a run killed at any point and resumed ends with the same labeled set and metrics as an
uninterrupted one.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from signal_al.classifier.metrics import class_balance
from signal_al.config import ExperimentConfig
from signal_al.core.errors import ConfigError, UserError
from signal_al.core.progress import progress_bar
from signal_al.core.run_layout import CONFIG_FILE, PREVIOUS_STATE_FILE, STATE_FILE
from signal_al.core.run_state import RunState
from signal_al.data.pools import as_dataset, real_items
from signal_al.engine.annotation.annotate import annotate_round, pending_items
from signal_al.engine.budgets import check_grid, round_targets, target_pct, total_budget
from signal_al.engine.context import RunContext
from signal_al.engine.generator.agent import build_agent
from signal_al.engine.methods import method_name
from signal_al.engine.selection import select_items
from signal_al.engine.store import RunStore, key_list
from signal_al.engine.tracking import Tracker
from signal_al.strategies import build_strategy

__all__ = ["ActiveLearningRun"]


class ActiveLearningRun:
    """One run of one strategy with one seed, persisted in ``config.run_dir``.

    ``annotator`` replaces the model annotator; ``store`` the run folder's reader/writer.
    """

    def __init__(self, config: ExperimentConfig, *, cache_root: Path | None = None, progress: bool = True,
                 log: Callable[[str], None] = print, annotator: Any = None, store: RunStore | None = None) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.log = log
        self.progress = progress
        self.context = RunContext(config, cache_root=cache_root, annotator=annotator, progress=progress, log=log)
        self.store = store or RunStore(self.run_dir)
        self.strategy = build_strategy(config.active_learning.strategy, config.reward)  # unknown names fail here
        self.agent = build_agent(self.context)
        self.pool_based = not self.agent.generates  # a generating run's pool grows: only the budget ends it

    def _check_grid(self, pool_size: int) -> None:
        al = self.config.active_learning
        check_grid(pool_size, al.stop_fraction, al.seed_size, pool_based=self.pool_based)

    def _commit(self, state: RunState) -> None:
        self.store.persist(state, self.context.label_names)

    def _start(self, resume: bool) -> RunState:
        """The saved state, or a new run's first one; nothing is written before every check passed.

        Checked first: the data and the acquisition grid, the device and model files on this
        machine (:meth:`RunContext.check_machine`), and for a saved state that it belongs to the
        config (:meth:`_check_belongs`). A run that never committed a round starts again with the
        given config. A resumed run's views are rebuilt from its state when they differ.
        """
        state = self.store.load_state()
        if state is not None and not state.started:  # stopped before its first commit: nothing to keep
            self.log(f"note: {self.run_dir} never committed a round (its last attempt stopped before round 0 "
                     "finished); starting it again with this config")
            state = None
        elif state is None and resume:
            self.log(f"note: {self.run_dir} holds no run to resume; starting a new one")
        if state is not None and not resume:
            raise UserError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another name")
        if state is None:
            self.store.check_new(self.config)  # never overwrite or delete what this run did not write
            pool = self.context.pool  # data errors come before the folder is written
            self._check_grid(len(pool))
            self._check_pool_labels(pool)
            self.context.check_machine()
            self.store.write_config(self.config)
            state = RunState(pool_size=len(pool), items=real_items(pool))
            self._commit(state)
        else:
            self._check_belongs(state)
            self._check_grid(state.pool_size)
            self.context.check_machine(new=False)  # a killed run's server may still hold its port: stopped at start
            rebuilt = self.store.rebuild_views(state, self.context.label_names)
            if rebuilt:
                self.log(f"note: {' and '.join(rebuilt)} in {self.run_dir} did not match {STATE_FILE} (the commit "
                         "point); rebuilt from it")
            missing = self.store.keys_missing_from_config() if (self.run_dir / CONFIG_FILE).is_file() else []
            if missing:
                self.log(f"note: {self.run_dir / CONFIG_FILE} predates {key_list(missing)} (written by an older signal-al): "
                         "the rounds to come use the resumed config's value, earlier rounds ran before "
                         f"{'these keys' if len(missing) > 1 else 'the key'} existed")
        return state

    def _check_pool_labels(self, pool) -> None:
        """A real pool that cannot hold one item per label is an error: the run would train on a single
        label or acquire nothing (a pool of one item ran without a word)."""
        names = self.context.label_names
        if len(pool) < len(names):
            data = self.config.data
            key = "data.pool_size" if data.pool_size is not None else "data.pool_fraction"
            value = data.pool_size if data.pool_size is not None else data.pool_fraction
            raise ConfigError(f"{key}={value}: the real pool has {len(pool)} item{'s' if len(pool) != 1 else ''}, "
                              f"fewer than the {len(names)} labels of {self.context.data.spec.name}; a pool needs at "
                              f"least one item per label: raise {key}")

    def _check_belongs(self, state: RunState) -> None:
        """The saved state and the config are of one run (not a state.json copied from another run, nor a
        config.yaml edited to another task, seed or method); a one-line error saying what does not match,
        before anything is written."""
        config, context = self.config, self.context
        where = f"{self.run_dir}: {STATE_FILE} does not belong to {CONFIG_FILE}"
        fix = "put back the run's own files, or start a new run under another name"
        pool = context.pool
        real = [item for item in state.items if item.source == "real"]
        if state.pool_size != len(pool) or [i.id for i in real] != list(pool.ids):
            first = next((i for i, (a, b) in enumerate(zip([i.id for i in real], pool.ids)) if a != b),
                         min(len(real), len(pool)))
            raise UserError(f"{where}: its real pool ({len(real)} items) is not the pool the config draws "
                            f"({config.data.task}, seed {config.seed}: {len(pool)} items); they first differ at item "
                            f"{first + 1} ({_shown(real, first)} vs {_shown(list(pool.ids), first)}); {fix}")
        changed = next((i for i, (item, text) in enumerate(zip(real, pool.texts)) if item.text != text), None)
        if changed is not None:
            raise UserError(f"{where}: the text of item '{real[changed].id}' differs from {config.data.task} "
                            f"(the data changed since the run started?); {fix}")
        for key, expected in (("strategy", method_name(config)), ("seed", config.seed)):
            other = next((row for row in state.metrics if row.get(key) != expected), None)
            if other is not None:
                raise UserError(f"{where}: round {other.get('round')} ran with {key} {other.get(key)!r}, the config "
                                f"says {expected!r}; {fix}")
        names = context.label_names
        bad = next((a for a in state.annotations if not 0 <= a.label < len(names)), None)
        if bad is not None:
            raise UserError(f"{where}: item '{bad.id}' has label {bad.label}, but {config.data.task} has "
                            f"{len(names)} labels; {fix}")
        known = {item.id for item in state.items}
        pending = state.pending.ids if state.pending is not None else []
        stray = next((i for i in [a.id for a in state.annotations] + pending if i not in known), None)
        if stray is not None:
            raise UserError(f"{self.run_dir}: {STATE_FILE} labels or awaits item '{stray}', which is not among its "
                            f"items (a hand-edited or mixed state); copy {PREVIOUS_STATE_FILE} over {STATE_FILE}")
        for what, folder in (("classifier checkpoint", state.checkpoint), ("generator adapter", state.adapter)):
            if folder and not (self.run_dir / folder).is_dir():
                raise UserError(f"{self.run_dir}: {STATE_FILE} names the {what} {folder}, which is missing; restore "
                                f"it, or copy {PREVIOUS_STATE_FILE} over {STATE_FILE} if it names one that is there")
        if state.checkpoint:
            self._check_checkpoint(self.run_dir / state.checkpoint, names, where, fix)

    def _check_checkpoint(self, folder: Path, names: tuple[str, ...], where: str, fix: str) -> None:
        """The classifier checkpoint the next round selects with is whole and has the task's labels."""
        from signal_al.core.model_files import model_folder_problem

        problem = model_folder_problem(folder)
        if problem is not None:
            raise UserError(f"{self.run_dir}: the classifier checkpoint is damaged ({problem}); copy "
                            f"{PREVIOUS_STATE_FILE} over {STATE_FILE} to redo the round that wrote it")
        labels = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label") or {}
        saved = [str(labels[key]) for key in sorted(labels, key=int)] if all(str(k).isdigit() for k in labels) else []
        if saved and saved != list(names):
            raise UserError(f"{where}: its classifier checkpoint has the labels {', '.join(saved)}, the task has "
                            f"{', '.join(names)}; {fix}")

    def run(self, *, resume: bool = False) -> RunState:
        """Run (or continue) rounds until the annotation budget is spent."""
        config, al, agent = self.config, self.config.active_learning, self.agent
        state = self._start(resume)
        total = total_budget(state.pool_size, al.stop_fraction, pool_based=self.pool_based)
        targets = round_targets(state.pool_size, al.round_fraction, total, al.seed_size)
        if state.finished and len(state.annotations) < total and not self._pool_spent(state):
            # a larger stop_fraction continues a finished run (e.g. a grid first run to 100 %, then to 200 %)
            self.log(f"extending the finished run from {len(state.annotations)} to {total} labels "
                     f"(active_learning.stop_fraction {al.stop_fraction})")
            self.store.write_config(config)
            state.finished = False
        agent.prepare(state)
        tracker = Tracker(config, self.run_dir)
        bar = progress_bar(total=len(targets), initial=state.round + 1, desc=f"{al.strategy} rounds",
                           unit="round", disable=not self.progress)
        try:
            while not state.finished:
                row = self._round(state, state.round + 1, targets, total)
                if row is None:
                    break
                tracker.log(row, step=state.round)
                bar.set_postfix(labeled=row["n_labeled"], acc=f"{row['accuracy']:.3f}", refresh=False)
                bar.update(1)
                self.log(f"round {state.round}: {row['n_labeled']} labeled ({row['acquired_pct']:.0f}% of pool), "
                         f"accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}")
        finally:
            bar.close()
            tracker.finish()
            agent.close()  # stops a server this run started
        return state

    def _round(self, state: RunState, r: int, targets: list[int], total: int) -> dict | None:
        """One round in the order the module docstring states; None when the budget is spent."""
        config, agent, context = self.config, self.agent, self.context
        seconds: dict[str, float] = {}
        budget = max(0, targets[min(r, len(targets) - 1)] - len(state.annotations))
        with _timed(seconds, "generate"):
            agent.propose(state, r, budget, self._commit)
        budget = min(budget, state.unlabeled_count())
        if budget <= 0:
            state.finished = True
            self._commit(state)
            return None
        share = agent.synthetic_share(r, len(targets))
        with _timed(seconds, "select"):
            selected = pending_items(state, r)
            if selected is None:
                selection = select_items(context, state, r, budget, self.strategy,
                                         np.random.default_rng([config.seed, r]), synthetic_share=share)
                selected = selection.items
                agent.record_scores(state, r, selection.scores)
        with _timed(seconds, "annotate"):
            annotations = annotate_round(context, state, r, selected, commit=self._commit)
        if state.labeled_ids & {a.id for a in annotations}:
            raise RuntimeError("an item was selected twice (a bug, please report it)")
        state.annotations.extend(annotations)
        with _timed(seconds, "train_eval"):
            model, row = self._fit(state, r)
        with _timed(seconds, "ppo"):
            row.update(agent.update(state, r, selected, share, classifier=model))
        row["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        checkpoint = self.store.save_checkpoint(model, r)
        state.round, state.checkpoint = r, checkpoint
        state.metrics.append(row)
        state.finished = len(state.annotations) >= total or self._pool_spent(state)
        self._commit(state)
        self.store.remove_stale_checkpoints(checkpoint)
        return row

    def _pool_spent(self, state: RunState) -> bool:
        """Whether a pool-based run has labeled its whole pool (a generating run's pool grows every round)."""
        return self.pool_based and state.unlabeled_count() <= 0

    def _fit(self, state: RunState, r: int) -> tuple[Any, dict]:
        """Step 5: a fresh classifier on L, evaluated on the test split; the round's metrics row."""
        config, context = self.config, self.context
        labeled = state.labeled_items()
        labels = [a.label for a in state.annotations]
        fit = context.fit_classifier(as_dataset(labeled, labels), seed=config.seed * 1000 + r)
        n_synthetic = sum(item.source == "synthetic" for item in labeled)
        al = config.active_learning
        return fit.model, {
            "round": r, "strategy": method_name(config), "seed": config.seed, "n_labeled": len(labels),
            "n_real": len(labels) - n_synthetic, "n_synthetic": n_synthetic,
            "acquired_pct": round(100.0 * len(labels) / state.pool_size, 4),
            "target_pct": target_pct(r, al.round_fraction, al.seed_size, state.pool_size),
            "accuracy": fit.metrics["accuracy"], "macro_f1": fit.metrics["macro_f1"],
            "per_class": fit.metrics["per_class"],
            **class_balance(np.asarray(labels), context.data.spec.num_labels),
            "train_steps": fit.stats.steps, "train_loss": fit.stats.final_loss,
        }


def _shown(values: list, index: int) -> str:
    """The item (or id) at ``index`` for a message, or 'none' past the end."""
    if index >= len(values):
        return "none"
    value = values[index]
    return repr(getattr(value, "id", value))


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start
