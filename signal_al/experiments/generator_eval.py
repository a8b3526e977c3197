"""Compare generator checkpoints (the base model as round 0, then LoRA adapters) side by side.

Every checkpoint writes N examples from the *same* in-context prompts with the *same*
sampling seeds, so the rows differ only by the generator's weights. Each row measures what
SIGnAL wants from a generator:

- informativeness: mean/std SIGnAL reward of the valid samples against the run's labeled
  set, under the run's latest classifier (the reward the generator was trained on);
- validity: share of the N outputs that survive cleaning and deduplication against
  R ∪ S ∪ L (what the loop would keep);
- diversity: distinct-1/2 and self-BLEU of the valid samples;
- balance: label counts under the annotator and their standard deviation;
- relevance: mean Euclidean distance between L2-normalised classifier embeddings of each
  valid sample and its nearest real pool example (the SIGnAL score's geometry:
  d = sqrt(2 − 2·cos); 0 = a copy, sqrt(2) = orthogonal);
- optionally, the test accuracy gained by adding the samples (annotator labels) to the
  labeled set, every classifier trained with the same seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from signal_al.classifier.config import ClassifierConfig
from signal_al.classifier.metrics import self_bleu
from signal_al.config import ExperimentConfig
from signal_al.core.errors import ConfigError, UserError
from signal_al.core.run_layout import ADAPTERS_DIR, CONFIG_FILE, GENERATOR_EVAL_DIR, SERVER_LOG, STATE_FILE
from signal_al.core.run_state import Item, RunState
from signal_al.data.pools import as_dataset
from signal_al.data.task import TaskSpec, TextDataset
from signal_al.experiments.generator_eval_outputs import fmt_cell, write_outputs
from signal_al.generation.records import Candidate
from signal_al.rewards.config import RewardConfig

BASE = "base"

# --- relevance: a pure function -----------------------------------------------------------------


def nearest_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance of each query row to its nearest reference row, both L2-normalised.

    The exact faiss index the SIGnAL score uses, so relevance and reward share one geometry.
    """
    from signal_al.neighbors.knn import LabeledIndex
    from signal_al.neighbors.validation import prepare_embeddings

    index = LabeledIndex(prepare_embeddings("references", references, normalize=True), use_gpu=False)
    distances, _ = index.search(prepare_embeddings("queries", queries, normalize=True), 1)
    return distances[:, 0]


# --- checkpoints and what they are measured against -----------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A generator to evaluate: the base model (``path=None``) or a LoRA adapter folder."""

    name: str
    path: Path | None = None


@dataclass
class Reference:
    """Everything every checkpoint is measured against, built once."""

    spec: TaskSpec
    pool: TextDataset  # the real pool R: prompts and relevance
    labeled_items: list[Item]  # the fixed labeled set L ...
    labeled_labels: list[int]  # ... and its labels
    classifier: Any  # scores the reward (the run's latest checkpoint)
    tokenizer: Any
    annotator: Any  # ``annotate(items) -> labels``
    reward: RewardConfig
    classifier_config: ClassifierConfig
    device: Any = "cpu"
    known: list[str] = field(default_factory=list)  # dedup keys of R ∪ S ∪ L
    test: TextDataset | None = None  # accuracy gain only
    model_source: str | None = None  # accuracy gain: the pretrained classifier to fine-tune
    probs_l: np.ndarray | None = None
    emb_l: np.ndarray | None = None
    emb_real: np.ndarray | None = None  # the whole real pool: distance to real text
    emb_reference: np.ndarray | None = None  # relevance: the rows relevance_reference names ...
    reference_labeled: bool = False  # ... which are labeled rows when every real row is labeled

    def classify(self, texts: Sequence[str], pairs: Sequence[str | None] | None) -> Any:
        """Probabilities and embeddings from the reward classifier (one pass)."""
        from signal_al.classifier.inference import predict

        use_pairs = self.spec.is_pair and pairs is not None
        return predict(self.classifier, self.tokenizer, list(texts), [p or "" for p in pairs] if use_pairs else None,
                       batch_size=self.classifier_config.eval_batch_size,
                       max_length=self.classifier_config.max_length, device=self.device)

    def prepare(self) -> "Reference":
        """Classify L and R once; every checkpoint reuses these arrays."""
        if self.probs_l is None:
            from signal_al.rewards.relevance import relevance_reference

            labeled = self.classify([i.text for i in self.labeled_items], [i.text_pair for i in self.labeled_items])
            self.probs_l, self.emb_l = labeled.probs, labeled.embeddings
            self.emb_real = self.classify(self.pool.texts, self.pool.text_pairs).embeddings
            labeled_ids = {item.id for item in self.labeled_items}
            rows, self.reference_labeled = relevance_reference(np.ones(len(self.pool), dtype=bool),
                                                               [i in labeled_ids for i in self.pool.ids])
            self.emb_reference = self.emb_real[rows]
        return self


def served_name(path: Path) -> str:
    """The name an adapter is served under, unique to the folder's content.

    A server keeps the first adapter loaded under a name (loading a name again is a no-op),
    so round-numbered names could silently serve another run's adapter of the same round.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return f"eval-{digest.hexdigest()[:12]}"


def generate_samples(generator: Any, checkpoint: Checkpoint, pool: TextDataset, n: int, seed: int,
                     known: Sequence[str] = ()) -> list[Candidate]:
    """``n`` candidates (kept and dropped) from ``checkpoint``: one per prompt, no re-asking.

    The prompts and per-prompt sampling seeds are functions of ``seed`` alone
    (:meth:`CandidateGenerator.generate`), so every checkpoint answers the same prompts.
    """
    adapter = None
    if checkpoint.path is not None:
        adapter = served_name(checkpoint.path)
        generator.backend.load_adapter(adapter, checkpoint.path)
    return generator.generate(pool, n, known=list(known), seed=seed, adapter=adapter)


def trained_accuracy(reference: Reference, extra_items: Sequence[Item] = (), extra_labels: Sequence[int] = (), *,
                     seed: int) -> float:
    """Test accuracy of the classifier fine-tuned on L (plus extra labeled items) with ``seed``."""
    from signal_al.classifier.fit_eval import fit_and_evaluate

    if reference.test is None or reference.model_source is None:
        raise ValueError("reference: the accuracy gain needs the test split and the classifier's model source")
    train = as_dataset([*reference.labeled_items, *extra_items], [*reference.labeled_labels, *extra_labels])
    fit = fit_and_evaluate(reference.model_source, reference.tokenizer, train, reference.test,
                           reference.spec.label_names, reference.classifier_config, seed=seed,
                           device=reference.device)
    return fit.metrics["accuracy"]


@dataclass
class CheckpointResult:
    """A checkpoint's table row, one record per candidate, and its valid samples with their labels."""

    row: dict
    records: list[dict]
    items: list[Item]
    labels: list[int]


def checkpoint_metrics(candidates: Sequence[Candidate], reference: Reference) -> CheckpointResult:
    """The metrics of one checkpoint's candidates (kept and dropped) against ``reference``."""
    from signal_al.classifier.metrics import class_balance
    from signal_al.engine.generator.round import generation_stats, synthetic_items
    from signal_al.rewards import knn_mean_distances, signal_scores

    reference.prepare()
    stats = generation_stats(candidates)
    items = synthetic_items(candidates, 0)
    texts = [item.text for item in items]
    row: dict[str, Any] = {
        "n": stats["n_candidates"], "n_valid": stats["n_kept"],
        "valid_fraction": stats["n_kept"] / max(stats["n_candidates"], 1),
        "reward_mean": None, "reward_std": None,
        "distinct_1": stats["distinct_1"], "distinct_2": stats["distinct_2"], "self_bleu": self_bleu(texts),
    }
    labels: list[int] = []
    rewards = distances = np.zeros(0)
    if items:
        outputs = reference.classify(texts, [item.text_pair for item in items])
        r = reference.reward
        real = None if r.relevance == "none" else knn_mean_distances(
            reference.emb_reference, reference.emb_l, k=r.k, normalize=r.normalize,
            exclude_self=reference.reference_labeled)
        rewards = signal_scores(outputs.probs, outputs.embeddings, reference.probs_l, reference.emb_l, r,
                                use_gpu=False, reference_distances=real)
        distances = nearest_distances(outputs.embeddings, reference.emb_real)
        labels = [int(label) for label in reference.annotator.annotate(items)]
        row["reward_mean"], row["reward_std"] = float(rewards.mean()), float(rewards.std())
    balance = class_balance(np.asarray(labels, dtype=np.int64), reference.spec.num_labels)
    for name, count in zip(reference.spec.label_names, balance["class_counts"]):
        row[f"label_{name}"] = int(count)
    row["label_std"] = balance["class_count_std"]
    row["relevance_distance"] = float(distances.mean()) if items else None
    row["dropped_by_reason"] = ", ".join(f"{k} {v:.2f}" for k, v in stats["dropped_by_reason"].items())
    records, position = [], 0
    for candidate in candidates:
        record = {**candidate.to_dict(), "reward": None, "annotator_label": None, "nearest_real_distance": None}
        if candidate.kept:
            record.update(reward=float(rewards[position]), annotator_label=labels[position],
                          nearest_real_distance=float(distances[position]))
            position += 1
        records.append(record)
    return CheckpointResult(row, records, items, labels)


def evaluate_checkpoints(
    generator: Any, checkpoints: Sequence[Checkpoint], reference: Reference, *, n: int, seed: int,
    accuracy_gain: bool = False, train_seed: int | None = None, progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], list[dict], float | None]:
    """(rows, sample records, baseline accuracy or None): every checkpoint on the same prompts and seeds."""
    from signal_al.core.progress import progress_bar

    reference.prepare()
    train_seed = seed if train_seed is None else train_seed
    baseline = None
    if accuracy_gain:
        baseline = trained_accuracy(reference, seed=train_seed)
        log(f"labeled set alone ({len(reference.labeled_items)} items): test accuracy {baseline:.4f}")
    rows: list[dict] = []
    samples: list[dict] = []
    for checkpoint in progress_bar(checkpoints, desc="generator checkpoints", unit="checkpoint", disable=not progress):
        candidates = generate_samples(generator, checkpoint, reference.pool, n, seed, reference.known)
        result = checkpoint_metrics(candidates, reference)
        row = {"checkpoint": checkpoint.name, **result.row}
        if baseline is not None:
            accuracy = (trained_accuracy(reference, result.items, result.labels, seed=train_seed) if result.items
                        else baseline)
            row.update(accuracy=accuracy, accuracy_gain=accuracy - baseline)
        rows.append(row)
        samples += [{"checkpoint": checkpoint.name, **record} for record in result.records]
        log(f"{checkpoint.name}: {row['n_valid']}/{row['n']} valid, reward {fmt_cell(row['reward_mean'], '.4g')}, "
            f"self-BLEU {fmt_cell(row['self_bleu'])}")
    return rows, samples, baseline


# --- a run directory ------------------------------------------------------------------------------------


@dataclass
class RunEvaluation:
    """What `signal-al evaluate-generator RUN_DIR` evaluates, checked before any model loads."""

    run_dir: Path
    config: ExperimentConfig
    state: RunState
    checkpoints: list[Checkpoint]
    output_dir: Path


def _adapter_checkpoint(run_dir: Path, given: str | Path) -> Checkpoint:
    path = Path(given)
    if not path.exists() and not path.is_absolute() and (run_dir / path).exists():
        path = run_dir / path
    if not path.is_dir():
        raise UserError(f"adapter {given}: no such folder (also looked in {run_dir})")
    if not (path / "adapter_config.json").is_file():
        raise UserError(f"adapter {path}: not a LoRA adapter folder (no adapter_config.json)")
    path = path.resolve()
    try:
        name = path.relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        name = str(given)
    return Checkpoint(name, path)


def plan_run_evaluation(run_dir: Path, *, adapters: Sequence[str | Path] = (), all_adapters: bool = False,
                        overrides: Sequence[str] = (), output_dir: Path | None = None) -> RunEvaluation:
    """The run's config, state and the checkpoints to compare: base, then the given adapters
    (default: the run's latest one; ``all_adapters``: every ``adapters/round-*``)."""
    from signal_al.engine.store import RunStore

    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    if not (run_dir / STATE_FILE).is_file():
        raise UserError(f"{run_dir}: no {STATE_FILE}; the run has not started")
    config = store.saved_config(overrides)
    state = store.load_state()
    if state.checkpoint is None or not (run_dir / state.checkpoint).is_dir():
        raise UserError(f"{run_dir}: no classifier checkpoint to score with (state.json names "
                        f"{state.checkpoint or 'none'}); run at least one round")
    if not state.annotations:
        raise UserError(f"{run_dir}: the labeled set is empty; the reward needs labeled items")
    given = [str(p) for p in adapters]
    if all_adapters:
        given = [str(p) for p in sorted((run_dir / ADAPTERS_DIR).glob("round-*")) if p.is_dir()] + given
    elif not given and state.adapter is not None:
        given = [state.adapter]
    checkpoints = [Checkpoint(BASE)]
    for path in given:
        checkpoint = _adapter_checkpoint(run_dir, path)
        if all(checkpoint.path != c.path for c in checkpoints):
            checkpoints.append(checkpoint)
    return RunEvaluation(run_dir, config, state, checkpoints, Path(output_dir) if output_dir else run_dir / GENERATOR_EVAL_DIR)


def run_reference(plan: RunEvaluation, *, cache_root: Path | None = None, annotator: Any = None,
                  progress: bool = True, log: Callable[[str], None] = print) -> Reference:
    """The run's labeled set, latest classifier, real pool, test split and model annotator."""
    from transformers import AutoModelForSequenceClassification

    from signal_al.engine.context import RunContext
    from signal_al.generation.cleaning import dedup_key

    config, state = plan.config, plan.state
    run = RunContext(config, cache_root=cache_root, annotator=annotator, progress=progress, log=log)
    pool = run.pool
    if len(pool) != state.pool_size:
        raise ConfigError(f"{plan.run_dir}: the config draws a real pool of {len(pool)} items but the run has "
                          f"{state.pool_size}; do not --set data.* or seed")
    device = run.device
    classifier = AutoModelForSequenceClassification.from_pretrained(plan.run_dir / state.checkpoint).to(device)
    return Reference(
        spec=run.data.spec, pool=pool, labeled_items=state.labeled_items(),
        labeled_labels=[a.label for a in state.annotations], classifier=classifier.eval(), tokenizer=run.tokenizer,
        annotator=run.model_annotator(), reward=config.reward,
        classifier_config=config.classifier, device=device,
        known=[dedup_key(item.text, item.text_pair) for item in state.items], test=run.data.test,
        model_source=run.model_source,
    )


def evaluate_run(plan: RunEvaluation, *, n: int, seed: int | None = None, accuracy_gain: bool = False,
                 cache_root: Path | None = None, annotator: Any = None, progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Path]:
    """Evaluate the plan's checkpoints and write the table, plot and samples; returns their paths.

    The annotator and the classifier pass over L and R come before the generator (a vLLM
    server the config asks for is started here and stopped on the way out).
    """
    from signal_al.generation.generator import create_generator
    from signal_al.generation.server.process import managed_server

    if n < 1:
        raise UserError(f"--n: must be positive, got {n}")
    config = plan.config
    seed = config.seed if seed is None else seed
    reference = run_reference(plan, cache_root=cache_root, annotator=annotator, progress=progress, log=log).prepare()
    with managed_server(config.generator, log_file=plan.output_dir / SERVER_LOG, log=log):
        generator = create_generator(config.generator, reference.spec, seed=seed, device=str(reference.device))
        if config.generator.backend == "vllm-server":
            generator.backend.check()  # one clear error before any adapter is loaded
        try:
            rows, samples, baseline = evaluate_checkpoints(generator, plan.checkpoints, reference, n=n, seed=seed,
                                                           accuracy_gain=accuracy_gain, progress=progress, log=log)
        finally:
            generator.backend.close()
    preamble = (f"Generator checkpoints of `{plan.run_dir}`: {n} samples each from the same prompts (seed {seed}). "
                f"Reward: SIGnAL score against the labeled set ({len(reference.labeled_items)} items) under "
                f"`{plan.state.checkpoint}`; labels from the "
                f"{getattr(reference.annotator, 'name', type(reference.annotator).__name__)} annotator; "
                "distance to real: Euclidean between L2-normalised classifier embeddings.")
    if baseline is not None:
        preamble += f" Test accuracy of the labeled set alone: {baseline:.4f}."
    return write_outputs(rows, samples, plan.output_dir, reference.spec.label_names, preamble)


__all__ = ["Checkpoint", "CheckpointResult", "Reference", "RunEvaluation", "checkpoint_metrics",
           "evaluate_checkpoints", "evaluate_run", "generate_samples", "nearest_distances",
           "plan_run_evaluation", "run_reference", "served_name", "trained_accuracy"]
