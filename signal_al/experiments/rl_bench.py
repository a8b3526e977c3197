"""Does the generator's RL update raise a reward on prompts it never trained on?

The measurement behind ``scripts/bench_rl.py`` and ``signal-al check-rl``, on the path users
run: the generator served by vLLM (or transformers), its candidates rewarded, one PPO update
per iteration by one :class:`~signal_al.trainers.ppo_trainer.PPOTrainer` (one optimizer for
the whole bench), the new adapter hot-loaded for the next iteration.

The classifier and labeled set are fixed (a seeded labeled set of the task, the classifier
trained once). Training prompts and held-out prompts draw their in-context examples from two
disjoint parts of the train split. The reward (``reward``) is one of:

* ``signal``: the SIGnAL score with the relevance gate, a gated text costing ``gated_penalty``;
* ``shuffled``: the same values permuted within each iteration (the null control);
* ``classprob``: the task's model annotator's probability of ``target_class`` (the positive control);
* ``length``: ``-words/10`` (a trivially learnable control).

At each evaluation point the base model and the current adapter answer the same held-out
prompts with the same seeds; both are rewarded the way the update was (``shuffled`` by the
unshuffled SIGnAL reward), and the paired gain comes with its 95 % interval and clustered z
(:func:`signal_al.engine.generator.heldout.paired_gain`), beside the mean length on both sides, the gain within
length bins, KL(adapter || base) on the adapter's own samples, distinct-2 and the
off-distribution share. Every row goes to ``OUT/metrics.jsonl``, every sample to
``OUT/samples.jsonl``, the settings to ``OUT/config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from signal_al.core.run_layout import ADAPTERS_DIR, METRICS_FILE, SERVER_LOG
from signal_al.experiments.controls import REWARD_KINDS

__all__ = ["FRESH_SEED_OFFSET", "KL_SAMPLES", "TRANSFER_FILE", "TRANSFER_POOLS", "RLBench", "RLBenchConfig",
           "format_stat", "split_prompt_pools"]

#: Held-out samples KL(adapter || base) is estimated on (two forward passes of the policy each).
KL_SAMPLES = 128
#: Rows of :meth:`RLBench.transfer` (base against a saved adapter on each prompt pool).
TRANSFER_FILE = "transfer.jsonl"
#: What :meth:`RLBench.transfer` can compare on: fresh prompts of the training pool (at the held-out seeds),
#: the run's held-out prompts, and draws made exactly as a training iteration makes them (its prompt count,
#: the seeds of the iterations after the run's last), and new prompts of the held-out pool at a seed the run
#: never used (``heldout-fresh``: an evaluation independent of every one the run made, of any size).
TRANSFER_POOLS = ("train", "heldout", "train-draws", "heldout-fresh")
#: Added to a run's held-out seed for ``heldout-fresh``: far from the held-out seeds (7,770,001 + seed) and
#: from the training seeds (seed x 1000 + iteration).
FRESH_SEED_OFFSET = 2_000_000


@dataclass
class RLBenchConfig:
    """What one bench run measures (``scripts/bench_rl.py --help`` explains each)."""

    reward: str = "signal"
    seed: int = 0
    task: str = "rt-movies"
    labeled: int = 40
    iterations: int = 8
    prompts: int = 16
    samples: int = 4
    heldout: int = 400
    heldout_per_prompt: int = 4
    eval_every: int = 0
    target_class: str = "positive"
    generator: str = "smollm2-135m-instruct"
    classifier: str = "minilm-l6"
    backend: str = "vllm-server"
    server_url: str = "http://127.0.0.1:8000"
    start_server: bool = True
    max_new_tokens: int = 40
    min_words: int = 3
    temperature: float = 1.0
    dtype: str = "auto"  # generator.dtype of the server it starts (auto: bf16 on AMX CPUs, else fp32)
    learning_rate: float = 1e-3
    kl_coef: float = 0.1
    advantage: str = "rloo"
    epochs: int = 1
    minibatches: int = 2
    lora_layers: int | None = None
    reset_optimizer: bool = False
    importance_sampling_cap: float | None = 3.0
    relevance: str = "typical"
    relevance_quantile: float = 0.9
    gated_penalty: float = -0.3
    offdist_quantile: float = 0.9
    classifier_steps: int = 50
    annotator_max_steps: int = 600
    measure_signal: bool = True  # also the SIGnAL score and off-distribution share of every text (a classifier fit)

    def __post_init__(self) -> None:
        if self.reward not in REWARD_KINDS:
            raise ValueError(f"reward: one of {', '.join(REWARD_KINDS)}, got {self.reward!r}")
        for key in ("labeled", "iterations", "prompts", "samples", "heldout", "heldout_per_prompt", "minibatches",
                    "epochs", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every: must be >= 0, got {self.eval_every}")
        if self.reward in ("signal", "shuffled") and not self.measure_signal:
            raise ValueError(f"reward {self.reward} needs measure_signal")

    def ppo(self) -> Any:
        from signal_al.trainers.ppo_config import PPOConfig

        rollouts = self.prompts * self.samples
        return PPOConfig(learning_rate=self.learning_rate, kl_coef=self.kl_coef, advantage=self.advantage,
                         num_ppo_epochs=self.epochs, num_mini_batches=self.minibatches,
                         per_device_train_batch_size=max(1, math.ceil(rollouts / self.minibatches)),
                         temperature=self.temperature, lora_r=8, lora_layers=self.lora_layers,
                         reset_optimizer=self.reset_optimizer, importance_sampling_cap=self.importance_sampling_cap,
                         seed=self.seed)

    def evaluation_points(self) -> list[int]:
        """Iterations after which the held-out comparison runs (always after the last)."""
        points = set(range(self.eval_every, self.iterations + 1, self.eval_every)) if self.eval_every else set()
        return sorted(points | {self.iterations})


def split_prompt_pools(data: Any, seed: int, labeled: int) -> tuple[Any, Any, Any, Any]:
    """(labeled set, training-prompt pool, held-out-prompt pool, real reference texts): disjoint rows."""
    from signal_al.data.task import TextDataset

    rng = np.random.default_rng([seed, 17])
    order = rng.permutation(len(data.train))

    def take(rows: np.ndarray) -> TextDataset:
        return TextDataset(ids=[data.train.ids[i] for i in rows], texts=[data.train.texts[i] for i in rows],
                           labels=data.train.labels[rows], text_pairs=None)

    lab, rest = order[:labeled], order[labeled:]
    part = min(400, len(rest) // 3)
    return take(lab), take(rest[:part]), take(rest[part:2 * part]), take(rest[2 * part:3 * part])


class RLBench:
    """One bench run: setup, ``iterations`` x (generate, reward, update), held-out evaluations."""

    def __init__(self, config: RLBenchConfig, out: Path, *, log: Callable[[str], None] = print,
                 cache_root: Path | None = None) -> None:
        self.config = config
        self.out = Path(out)
        self.log = log
        self.cache_root = cache_root
        self.rows: list[dict[str, Any]] = []

    # -- setup ------------------------------------------------------------------------------------------

    def _setup(self) -> None:
        from signal_al.classifier.config import ClassifierConfig
        from signal_al.data import load_task
        from signal_al.data.config import DataConfig

        c = self.config
        self.data = load_task(DataConfig(task=c.task, max_test_size=500), cache_root=self.cache_root)
        self.labeled, self.train_pool, self.heldout_pool, reference = split_prompt_pools(self.data, c.seed, c.labeled)
        recipe = ClassifierConfig(model=c.classifier, learning_rate=1e-4, max_length=64, batch_size=16, epochs=3,
                                  min_steps=c.classifier_steps)
        self.scorer = self.plain = self.ref_distances = None
        if c.measure_signal:
            self._fit_signal_scorers(recipe, reference)
        self.annotator = None
        if c.reward == "classprob":
            self._load_annotator(recipe)

    def _fit_signal_scorers(self, recipe: Any, reference: Any) -> None:
        from signal_al.assets.registry import resolve_model
        from signal_al.classifier.fit_eval import fit_and_evaluate
        from signal_al.classifier.training import load_tokenizer
        from signal_al.rewards import RewardConfig
        from signal_al.rewards.scorer import SignalScorer

        c = self.config
        source = resolve_model(recipe.model)
        tokenizer = load_tokenizer(source)
        fit = fit_and_evaluate(source, tokenizer, self.labeled, self.data.test, self.data.spec.label_names, recipe,
                               seed=c.seed)
        self.log(f"classifier on {len(self.labeled)} labels: test accuracy {fit.metrics['accuracy']:.3f}")
        model = fit.model.eval()

        def scorer(relevance: str) -> SignalScorer:
            config = RewardConfig(relevance=relevance, relevance_quantile=c.relevance_quantile)
            return SignalScorer(model, tokenizer, self.labeled.texts, params=config, reference_texts=reference.texts,
                                batch_size=128, max_length=recipe.max_length, device="cpu")

        self.scorer = scorer(c.relevance)  # the SIGnAL reward as trained
        self.plain = scorer("none")  # the paper's score, no gate
        self.ref_distances = scorer("typical").reference_distances()

    def _load_annotator(self, recipe: Any) -> None:
        """The task's model annotator (trained once, cached): the loop's labeller of synthetic text."""
        from signal_al.assets.registry import cache_dir
        from signal_al.core.errors import ConfigError
        from signal_al.engine.annotation.oracle import load_or_train_model_annotator

        c = self.config
        names = list(self.data.spec.label_names)
        if c.target_class not in names and not (c.target_class.isdigit() and int(c.target_class) < len(names)):
            raise ConfigError(f"target class {c.target_class!r} is not a label of {c.task} ({', '.join(names)})")
        self.target = names.index(c.target_class) if c.target_class in names else int(c.target_class)
        annotator_recipe = dataclasses.replace(recipe, max_steps=c.annotator_max_steps)
        self.annotator = load_or_train_model_annotator(self.data, annotator_recipe,
                                                       cache_root=cache_dir(self.cache_root), seed=0, progress=False)
        self.log(f"model annotator (the classprob reward): test accuracy {self.annotator.info.test_accuracy:.3f}, "
                 f"target class {names[self.target]!r}")

    # -- rewards ----------------------------------------------------------------------------------------

    def signal_reward(self, candidates: list) -> np.ndarray:
        """The shaped SIGnAL reward of each candidate (NaN: dropped by cleaning)."""
        from signal_al.engine.generator.heldout import score_kept, shaped_heldout_rewards

        gated = None if self.config.relevance == "none" else self.config.gated_penalty
        return shaped_heldout_rewards(score_kept(candidates, self.scorer), gated_penalty=gated)

    def reward(self, candidates: list, *, train_iteration: int | None = None) -> np.ndarray:
        """The configured reward; ``shuffled`` permutes the SIGnAL rewards only for training iterations."""
        from signal_al.classifier.inference import predict_rows
        from signal_al.experiments.controls import class_probability_reward, length_reward, shuffled_within

        kind = self.config.reward
        if kind == "length":
            return length_reward([c.text if c.kept else None for c in candidates])
        if kind == "classprob":
            values = np.full(len(candidates), np.nan)
            kept = [i for i, c in enumerate(candidates) if c.kept]
            if kept:
                a = self.annotator
                probs = predict_rows(a.model, a.tokenizer, [candidates[i] for i in kept], a.config,
                                     device=a.device).probs
                values[kept] = class_probability_reward(probs, self.target)
            return values
        values = self.signal_reward(candidates)
        if kind == "shuffled" and train_iteration is not None:
            values = shuffled_within(values, np.random.default_rng([self.config.seed, train_iteration, 1]))
        return values

    # -- the run ----------------------------------------------------------------------------------------

    def _write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with (self.out / METRICS_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def _samples(self, phase: str, candidates: list, rewards: np.ndarray) -> None:
        with (self.out / "samples.jsonl").open("a", encoding="utf-8") as f:
            for c, r in zip(candidates, rewards):
                f.write(json.dumps({"phase": phase, "group": c.group, "text": c.text if c.kept else c.raw_output,
                                    "drop_reason": c.drop_reason,
                                    "reward": None if math.isnan(r) else float(r)}) + "\n")

    def run(self) -> dict[str, Any]:
        """The whole bench; returns the last evaluation row (with ``wall_s``)."""
        from signal_al.assets.registry import resolve_model
        from signal_al.generation.generator import create_generator
        from signal_al.generation.server.process import managed_server
        from signal_al.trainers.ppo_trainer import PPOTrainer

        c, start = self.config, time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        for name in (METRICS_FILE, "samples.jsonl"):
            (self.out / name).unlink(missing_ok=True)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(c), indent=2) + "\n")
        self._setup()
        gen_config = self._generator_config()
        ppo = c.ppo()
        base_model = resolve_model(c.generator)
        last: dict[str, Any] = {}
        with managed_server(gen_config, log_file=self.out / SERVER_LOG, log=self.log):
            generator = create_generator(gen_config, self.data.spec, seed=c.seed, device="cpu", log=self.log)
            try:
                t0 = time.perf_counter()
                self._base = self._heldout(generator, adapter=None)
                self._base_rewards = self._heldout_rewards(self._base)
                self._samples("heldout-base", self._base, self._base_rewards["reward"])
                self.log(f"held-out base: {len(self._base)} samples in {time.perf_counter() - t0:.0f} s")
                trainer = PPOTrainer(base_model, ppo, cpu=True)
                adapter: Path | None = None
                for it in range(1, c.iterations + 1):
                    adapter = self._iteration(generator, trainer, it, adapter)
                    if it in c.evaluation_points():
                        last = self._evaluate(generator, trainer, it)
                        self.log(self.summary_line(last, wall_s=time.perf_counter() - start))
            finally:
                generator.backend.close()
        last = {**last, "wall_s": round(time.perf_counter() - start, 1)}
        (self.out / "summary.json").write_text(json.dumps(last, indent=2) + "\n")
        return last

    def _generator_config(self) -> Any:
        from signal_al.generation.config import GeneratorConfig

        c = self.config
        return GeneratorConfig(model=c.generator, backend=c.backend, dtype=c.dtype, server_url=c.server_url,
                               start_server=c.start_server and c.backend == "vllm-server",
                               max_new_tokens=c.max_new_tokens, temperature=c.temperature, num_in_context=3,
                               hf_batch_size=64, logprobs=True, min_words=c.min_words)

    def transfer(self, adapter: Path, pools: tuple[str, ...] = ("train", "heldout"),
                 samples: int | None = None) -> list[dict[str, Any]]:
        """The base model against a saved adapter on fresh prompts of each prompt pool.

        ``train``: new prompts (the held-out seeds) whose in-context examples come from the pool the
        adapter was trained on; ``heldout``: the held-out prompts of the run (the same samples as its
        evaluations, so it also checks that ``adapter`` is the one evaluated); ``train-draws``: the
        training pool drawn as a training iteration draws it (``prompts`` per call, the seeds of the
        iterations after the last); ``heldout-fresh``: new prompts of the held-out pool at a seed the run
        never used (``FRESH_SEED_OFFSET``), a confirmatory evaluation. A gain on ``train`` that is missing
        on ``heldout`` is learned about the training pool's texts, not the task; one on ``train-draws``
        alone is about the draw. ``samples`` (default: the run's ``heldout``) sets the size of the
        ``train`` and ``heldout-fresh`` comparisons, ``heldout_per_prompt`` samples a prompt; ``heldout``
        always repeats the run's own.
        Rows (``kind: transfer``) go to ``OUT/transfer.jsonl``, samples to ``OUT/samples.jsonl``.
        """
        from signal_al.generation.generator import create_generator
        from signal_al.generation.server.process import managed_server

        unknown = sorted(set(pools) - set(TRANSFER_POOLS))
        if unknown:
            raise ValueError(f"pools: any of {', '.join(TRANSFER_POOLS)}, got {', '.join(unknown)}")
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise ValueError(f"samples: a positive whole number, got {samples!r}")
        adapter = Path(adapter)
        if not (adapter / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter}: no adapter_config.json (not a saved adapter folder)")
        if (self.out / METRICS_FILE).exists():
            raise FileExistsError(f"{self.out}: holds a bench run ({METRICS_FILE}), whose samples.jsonl the transfer "
                                  f"would replace; write it elsewhere")
        self.out.mkdir(parents=True, exist_ok=True)
        for name in (TRANSFER_FILE, "samples.jsonl"):
            (self.out / name).unlink(missing_ok=True)
        self._setup()
        rows: list[dict[str, Any]] = []
        generator_config = self._generator_config()
        with managed_server(generator_config, log_file=self.out / SERVER_LOG, log=self.log):
            generator = create_generator(generator_config, self.data.spec, seed=self.config.seed, device="cpu",
                                         log=self.log)
            try:
                generator.load_adapter(adapter, 1)
                for pool in pools:
                    t0 = time.perf_counter()
                    self.log(f"{pool} prompts: sampling the base model")
                    base = self._transfer_draw(generator, pool, adapter=None, samples=samples)
                    base_rewards = self._heldout_rewards(base)
                    self._samples(f"{pool}-base", base, base_rewards["reward"])
                    self.log(f"{pool} prompts: {len(base)} base samples in {time.perf_counter() - t0:.0f} s; "
                             f"sampling the adapter")
                    trained = self._transfer_draw(generator, pool, adapter=True, samples=samples)
                    row = {"kind": "transfer", "pool": pool, "adapter": str(adapter), "reward": self.config.reward,
                           **self._comparison(base, base_rewards, trained, phase=f"{pool}-adapter"),
                           "eval_s": round(time.perf_counter() - t0, 1)}
                    rows.append(row)
                    with (self.out / TRANSFER_FILE).open("a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    fs = format_stat
                    self.log(f"{pool} prompts: base {fs(row['reward_base'])} -> adapter {fs(row['reward_adapter'])}, "
                             f"gain {fs(row['gain'], '+.4f')} [{fs(row['gain_lo'], '+.4f')}, "
                             f"{fs(row['gain_hi'], '+.4f')}], z {fs(row['paired_z'], '.2f')}, "
                             f"words {fs(row['words_base'], '.1f')} -> {fs(row['words_trained'], '.1f')}")
            finally:
                generator.backend.close()
        return rows

    def _transfer_draw(self, generator: Any, pool: str, adapter: bool | None, samples: int | None = None) -> list:
        """The samples of one transfer pool (same prompts and seeds for the base and the adapter)."""
        from signal_al.engine.generator.heldout import heldout_seed

        if pool == "heldout":
            return self._heldout(generator, adapter)
        if pool == "train":
            return self._heldout(generator, adapter, pool=self.train_pool, samples=samples)
        if pool == "heldout-fresh":
            return self._heldout(generator, adapter, samples=samples,
                                 seed=heldout_seed(self.config.seed) + FRESH_SEED_OFFSET)
        c = self.config  # the training iterations' own call: prompts x samples, at the seeds of the next iterations
        out: list = []
        for call in range(math.ceil(c.heldout / (c.prompts * c.samples))):
            batch = generator.generate(self.train_pool, c.prompts, samples_per_prompt=c.samples,
                                       seed=c.seed * 1000 + c.iterations + 1 + call, adapter=adapter)
            for x in batch:  # one cluster per prompt across the calls
                x.group = call * c.prompts + (x.group or 0)
            out.extend(batch)
        return out

    def _iteration(self, generator: Any, trainer: Any, it: int, adapter: Path | None) -> Path:
        from signal_al.engine.generator.round import served_logprobs
        from signal_al.trainers.rollouts import Rollout

        c = self.config
        t0 = time.perf_counter()
        candidates = generator.generate(self.train_pool, c.prompts, samples_per_prompt=c.samples,
                                        seed=c.seed * 1000 + it, adapter=True if adapter else None)
        rewards = self.reward(candidates, train_iteration=it)
        self._samples(f"train-{it}", candidates, rewards)
        rollouts = [Rollout(prompt_token_ids=list(x.prompt_token_ids), completion_token_ids=list(x.completion_token_ids),
                            reward=float(r), group=f"{it}:{x.group}", logprobs=served_logprobs(x))
                    for x, r in zip(candidates, rewards)
                    if x.prompt_token_ids and x.completion_token_ids and not math.isnan(r)]
        t1 = time.perf_counter()
        kept = ~np.isnan(rewards)
        words = [len((x.text or "").split()) for x in candidates if x.kept]
        row: dict[str, Any] = {"kind": "iteration", "iteration": it, "n_candidates": len(candidates),
                               "n_kept": int(kept.sum()), "reward_mean": float(np.nanmean(rewards)) if kept.any() else None,
                               "words_mean": float(np.mean(words)) if words else None, "generate_s": round(t1 - t0, 1)}
        if not rollouts:
            self.log(f"iter {it}: nothing to learn from (every candidate dropped); the adapter stays")
            self._write(row)
            return adapter
        metrics = trainer.train(rollouts, source=f"iteration {it}", seed=c.seed * 100 + it)
        target = self.out / ADAPTERS_DIR / f"iter-{it:03d}"
        trainer.save(target, metrics, overwrite=True)
        generator.load_adapter(target, it)
        if adapter is not None and adapter != target:
            shutil.rmtree(adapter, ignore_errors=True)  # only the latest adapter is kept (40 x 13 MB otherwise)
        row.update({k: metrics.get(k) for k in ("served_logprob_mae", "served_logprob_max", "is_weight_mean",
                                                  "kl_served_k3", "optimizer_steps", "optimizer_steps_total",
                                                  "policy_loss", "entropy")})
        row["update_s"] = round(time.perf_counter() - t1, 1)
        self._write(row)
        fs = format_stat
        self.log(f"iter {it}: kept {row['n_kept']}/{len(candidates)}, reward {fs(row['reward_mean'])}, "
                 f"words {fs(row['words_mean'], '.1f')}, served gap {fs(row['served_logprob_mae'], '.1e')}, "
                 f"KL(served||base) {fs(row['kl_served_k3'])}, generate {row['generate_s']:.0f} s, "
                 f"update {row['update_s']:.0f} s")
        return target

    def _heldout(self, generator: Any, adapter: bool | None, pool: Any = None, samples: int | None = None,
                 seed: int | None = None) -> list:
        """``samples`` (default ``heldout``) samples on prompts of ``pool`` (default: the held-out pool), at
        ``seed`` (default: the run's held-out seed)."""
        from signal_al.engine.generator.heldout import heldout_seed

        c = self.config
        prompts = math.ceil((c.heldout if samples is None else samples) / c.heldout_per_prompt)
        return generator.generate(self.heldout_pool if pool is None else pool, prompts,
                                  samples_per_prompt=c.heldout_per_prompt,
                                  seed=heldout_seed(c.seed) if seed is None else seed, adapter=adapter)

    def _heldout_rewards(self, candidates: list) -> dict[str, np.ndarray]:
        """The reward as trained (``shuffled``: the real SIGnAL reward), the paper's score and the length."""
        from signal_al.engine.generator.heldout import score_kept, words_of

        rows = {"reward": self.reward(candidates), "words": words_of(candidates)}
        if self.config.measure_signal:
            rows.update(paper=score_kept(candidates, self.plain), signal=self.signal_reward(candidates))
        return rows

    def _offdist(self, candidates: list) -> float | None:
        from signal_al.rewards import offdist_flags

        texts = [x.text for x in candidates if x.kept]
        if not texts or self.ref_distances is None:
            return None
        distances = self.plain.score(texts, return_neighbors=True).distances.mean(axis=1)
        flags = offdist_flags(distances, self.ref_distances, quantile=self.config.offdist_quantile, two_sided=True)
        return float(flags.mean())

    def _evaluate(self, generator: Any, trainer: Any, it: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        trained = self._heldout(generator, adapter=True)
        row: dict[str, Any] = {"kind": "eval", "iteration": it, "reward": self.config.reward}
        row.update(self._comparison(self._base, self._base_rewards, trained, phase=f"heldout-{it}"))
        # KL on the first KL_SAMPLES held-out samples: its noise is small next to the gain's, its cost is not
        sampled = [x for x in trained if x.prompt_token_ids and x.completion_token_ids][:KL_SAMPLES]
        kl = trainer.policy_kl([x.prompt_token_ids for x in sampled], [x.completion_token_ids for x in sampled])
        row.update({"kl": float(np.nanmean(kl)) if kl else None, "kl_samples": len(sampled),
                    "eval_s": round(time.perf_counter() - t0, 1)})
        self._write(row)
        return row

    def _comparison(self, base_candidates: list, base: dict[str, np.ndarray], trained: list,
                    phase: str) -> dict[str, Any]:
        """Base against adapter on the same prompts and seeds: paired gains, length, distinct-2, off-distribution."""
        from signal_al.classifier.metrics import distinct_n
        from signal_al.engine.generator.heldout import length_matched_gain, paired_gain

        now = self._heldout_rewards(trained)
        self._samples(phase, trained, now["reward"])
        groups = np.array([x.group for x in trained])
        row: dict[str, Any] = dict(paired_gain(base["reward"], now["reward"], groups, prefix=""))
        if "signal" in now and self.config.reward != "signal":  # the SIGnAL reward of the same texts
            row.update(paired_gain(base["signal"], now["signal"], groups, prefix="signal_"))
        if "paper" in now:
            row.update(paired_gain(base["paper"], now["paper"], groups, prefix="paper_"))
        row.update(length_matched_gain(base["reward"], now["reward"], base["words"], now["words"], groups,
                                       seed=self.config.seed))
        row.update({
            "words_base": _nanmean(base["words"]), "words_trained": _nanmean(now["words"]),
            "distinct2_base": distinct_n([x.text for x in base_candidates if x.kept], 2),
            "distinct2_trained": distinct_n([x.text for x in trained if x.kept], 2),
            "offdist_base": self._offdist(base_candidates), "offdist_trained": self._offdist(trained),
        })
        return row

    def summary_line(self, row: dict[str, Any], wall_s: float) -> str:
        """The ``rl:`` line (one line, the bench's last)."""
        c = self.config
        fs = format_stat
        fields = [("reward", c.reward), ("backend", c.backend), ("iterations", row.get("iteration")),
                  ("reward_base", fs(row.get("reward_base"))), ("reward_trained", fs(row.get("reward_adapter"))),
                  ("gain", fs(row.get("gain"))), ("gain_pct", fs(row.get("gain_pct"), ".1f")),
                  ("gain_lo", fs(row.get("gain_lo_pct"), ".1f")), ("gain_hi", fs(row.get("gain_hi_pct"), ".1f")),
                  ("paired_z", fs(row.get("paired_z"), ".2f")), ("paired_n", row.get("paired_n")),
                  ("kl", fs(row.get("kl"))), ("words_base", fs(row.get("words_base"), ".1f")),
                  ("words_trained", fs(row.get("words_trained"), ".1f")),
                  ("length_matched_gain", fs(row.get("length_matched_gain"))),
                  ("distinct2_base", fs(row.get("distinct2_base"), ".3f")),
                  ("distinct2_trained", fs(row.get("distinct2_trained"), ".3f")),
                  ("offdist_base", fs(row.get("offdist_base"), ".3f")),
                  ("offdist_trained", fs(row.get("offdist_trained"), ".3f")),
                  ("served_mae", fs(self._last_served(), ".1e")), ("wall_s", f"{wall_s:.0f}")]
        return "rl: " + " ".join(f"{k}={v}" for k, v in fields)

    def _last_served(self) -> float | None:
        values = [r["served_logprob_mae"] for r in self.rows if r.get("served_logprob_mae") is not None]
        return max(values) if values else None


def _nanmean(values: np.ndarray) -> float | None:
    return float(np.nanmean(values)) if (~np.isnan(values)).any() else None


def format_stat(value: Any, spec: str = ".4f", missing: str = "nan") -> str:
    """``value`` formatted, or ``missing`` where there was nothing to measure (None or NaN: no pair kept).

    >>> format_stat(0.0123, "+.3f"), format_stat(None), format_stat(float("nan"), ".2f", missing="-")
    ('+0.012', 'nan', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)
