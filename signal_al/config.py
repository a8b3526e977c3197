"""The experiment configuration: one dataclass per section, every field with help text.

A YAML file under ``configs/`` fills these sections; ``--set section.key=value`` overrides
any field. ``signal-al config show`` prints the resolved config and ``signal-al config
keys`` lists every key with its type, default and help. Range checks live in each
section's ``__post_init__`` so a bad value is rejected where it is read, naming its key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from signal_al.config_io import check, field, load_config
from signal_al.trainers.classifier_config import ClassifierConfig
from signal_al.trainers.ppo_config import PPOConfig


@dataclass
class DataConfig:
    task: str = field(
        "rt-movies",
        help="Built-in offline task (rt-movies, vader-sources), hub task (sst2, ag_news, qnli) "
        "or a path to a local CSV/JSONL/Parquet file.",
    )
    text_column: str = field("text", help="Local files: column holding the text.")
    text_pair_column: str | None = field(None, help="Local files: second text column for pair tasks.")
    label_column: str = field("label", help="Local files: column holding the label (name or integer id).")
    label_names: list[str] | None = field(
        None, help="Local files: the label set in id order; default is the sorted distinct labels."
    )
    test_file: str | None = field(None, help="Local files: a separate test file with the same columns.")
    test_fraction: float = field(0.2, help="Held-out test share when the corpus has no test split.")
    max_test_size: int | None = field(None, help="Evaluate on a seeded random subset of at most this many test rows.")
    pool_fraction: float | None = field(
        0.01, help="Real pool = this fraction of the train split (paper: 0.001 or 0.01)."
    )
    pool_size: int | None = field(None, help="Real pool = this many train rows (overrides pool_fraction).")
    split_seed: int = field(0, help="Seed of the train/test split (fixed so every run seed sees the same test rows).")
    stratify: bool = field(True, help="Keep label proportions when subsampling the pool and splitting test.")
    instruction: str | None = field(None, help="Override the task's generation instruction text.")

    def __post_init__(self) -> None:
        check(0.0 < self.test_fraction < 1.0, "data.test_fraction", f"must be in (0, 1), got {self.test_fraction}")
        if self.pool_fraction is not None:
            check(0.0 < self.pool_fraction <= 1.0, "data.pool_fraction", f"must be in (0, 1], got {self.pool_fraction}")
        if self.pool_size is not None:
            check(self.pool_size > 0, "data.pool_size", f"must be positive, got {self.pool_size}")
        if self.max_test_size is not None:
            check(self.max_test_size > 0, "data.max_test_size", f"must be positive, got {self.max_test_size}")
        check(bool(self.task.strip()), "data.task", "must not be empty")


@dataclass
class GeneratorConfig:
    model: str = field(
        "smollm2-135m-instruct",
        help="Offline asset name (smollm2-135m-instruct), a local folder, or a hub name such as "
        "Qwen/Qwen2.5-7B-Instruct.",
    )
    backend: Literal["vllm-server", "vllm", "transformers"] = field(
        "vllm-server", help="Where generation runs: a vLLM OpenAI server over HTTP, vLLM in-process, or transformers."
    )
    server_url: str = field("http://127.0.0.1:8000", help="Base URL of the vLLM server (vllm-server backend).")
    candidates_per_round: int | None = field(
        None, help="Prompts (one candidate each) per round; default is the round's annotation budget b."
    )
    num_in_context: int = field(3, help="In-context examples per prompt, drawn from the real pool.")
    max_new_tokens: int = field(64, help="Generation length limit in tokens.")
    temperature: float = field(1.0, help="Sampling temperature (always sent explicitly to the server).")
    top_p: float = field(1.0, help="Nucleus sampling threshold.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = field("bfloat16", help="Generator weights dtype.")
    label_conditioned: bool = field(
        False, help="Ask for an example of a given label, with in-context examples of that label (beyond the paper)."
    )
    diverse_in_context: bool = field(
        False, help="Draw one in-context example per k-means cluster of the real pool's embeddings (beyond the paper)."
    )
    chat_template: bool = field(
        True, help="Wrap the prompt in the model's chat template (paper). False sends it as plain text to continue "
        "after 'New Example:'; beyond the paper: SmolLM2-135M's meta-commentary falls from 40 % to 5 % of kept "
        "candidates on rt-movies (scripts/probe_prompts.py).")
    response_prefix: str = field(
        "", help="Text that opens the model's answer (after the chat template), e.g. 'New Example:'; the model "
        "continues from it and cleaning sees prefix + completion. Beyond the paper: with 'New Example:' "
        "SmolLM2-135M's meta-commentary falls from 40 % to 17 % of kept candidates (scripts/probe_prompts.py).")
    min_words: int = field(3, help="Cleaning: drop candidates with fewer words (per field for pair tasks: 1).")
    max_words: int = field(80, help="Cleaning: drop candidates with more words.")
    drop_meta_commentary: bool = field(
        False, help="Cleaning: drop text about the prompt or its examples ('In this example, Sentence 1 ...', "
        "'I'm glad I could ...'); about half of SmolLM2-135M's kept candidates, 0.4 % of real rt-movies texts.")
    near_duplicate_threshold: float = field(
        0.9, help="Cleaning: drop candidates whose word 1-2-gram cosine to a known text reaches this."
    )
    logprobs: bool = field(False, help="Also return the sampled tokens' log-probabilities.")
    parallel_requests: int = field(16, help="vllm-server: concurrent HTTP requests (one prompt each).")
    request_retries: int = field(5, help="vllm-server: retries (exponential backoff) on connection errors and 5xx.")
    request_timeout: float = field(300.0, help="vllm-server: seconds before one request times out.")
    start_server: bool = field(
        False, help="vllm-server: start a server at server_url for the duration of the run and stop it after."
    )
    server_python: str | None = field(
        None, help="Interpreter with vllm for the server; default: the CPU venv built from the lock file (GPU: this one)."
    )
    server_venv: str = field(".venv-vllm", help="Where the CPU server environment is built from the lock file.")
    server_args: list[str] = field(
        default_factory=list, help="Extra vLLM server arguments, e.g. ['--tensor-parallel-size', '2', "
        "'--gpu-memory-utilization', '0.85'].")
    max_model_len: int = field(1024, help="Server / in-process vLLM: context length.")
    max_lora_rank: int = field(8, help="Server / in-process vLLM: largest LoRA rank to serve (>= ppo.lora_r).")
    hf_batch_size: int = field(64, help="transformers backend: prompts per generate call.")

    def __post_init__(self) -> None:
        for key in ("min_words", "max_words", "parallel_requests", "max_model_len", "max_lora_rank", "hf_batch_size"):
            check(getattr(self, key) > 0, f"generator.{key}", f"must be positive, got {getattr(self, key)}")
        check(self.min_words <= self.max_words, "generator.min_words", "must be <= generator.max_words")
        check(0.0 < self.near_duplicate_threshold <= 1.0, "generator.near_duplicate_threshold",
              f"must be in (0, 1], got {self.near_duplicate_threshold}")
        check(self.request_retries >= 0, "generator.request_retries", f"must be >= 0, got {self.request_retries}")
        check(self.request_timeout > 0, "generator.request_timeout", f"must be positive, got {self.request_timeout}")
        check(self.server_url.startswith(("http://", "https://")), "generator.server_url",
              f"must start with http:// or https://, got {self.server_url!r}")
        check(self.num_in_context >= 0, "generator.num_in_context", f"must be >= 0, got {self.num_in_context}")
        check(self.max_new_tokens > 0, "generator.max_new_tokens", f"must be positive, got {self.max_new_tokens}")
        check(self.temperature >= 0, "generator.temperature", f"must be >= 0, got {self.temperature}")
        check(0.0 < self.top_p <= 1.0, "generator.top_p", f"must be in (0, 1], got {self.top_p}")
        if self.candidates_per_round is not None:
            check(self.candidates_per_round > 0, "generator.candidates_per_round", "must be positive")


@dataclass
class RewardConfig:
    k: int = field(10, help="Labeled nearest neighbours per scored item.")
    kl_direction: Literal["forward", "reverse"] = field(
        "forward", help="forward: KL(p_x || p_neighbour) (SIGnAL paper); reverse: KL(p_neighbour || p_x) (CAL code)."
    )
    eps: float = field(1e-6, help="Distance floor; keeps the score finite for duplicates.")
    normalize: bool = field(True, help="L2-normalise embeddings before the Euclidean distance.")
    approximate: bool = field(
        False, help="Approximate kNN (about sqrt(L) k-means lists, a few % of them probed) instead of exact; "
        "for labeled sets of tens of thousands and more."
    )
    whiten_kept: bool = field(
        False, help="Standardise the kept candidates' scores within each round for D_RL, so reward.invalid_penalty "
        "is in standard deviations (e.g. -2): keeps the ranking among kept candidates and still penalises dropped "
        "ones (ppo.whiten_rewards over all rewards lets a -1 penalty swamp scores of ~1e-3).")
    invalid_penalty: float | None = field(
        -1.0, help="D_RL reward of a candidate dropped by cleaning (empty, chatter, duplicate); null leaves dropped "
        "candidates out of D_RL. Kept candidates get their raw SIGnAL score (whitening/clipping: ppo.*)."
    )

    def __post_init__(self) -> None:
        check(self.k > 0, "reward.k", f"must be positive, got {self.k}")
        check(self.eps > 0, "reward.eps", f"must be positive, got {self.eps}")
        if self.invalid_penalty is not None:
            check(math.isfinite(self.invalid_penalty), "reward.invalid_penalty", "must be a finite number or null")


@dataclass
class ActiveLearningConfig:
    strategy: str = field(
        "signal",
        help="Selection rule: random, entropy, bertkm, badge, cal, coreset, cluster, qbc or signal.",
    )
    round_fraction: float = field(0.1, help="Annotation budget per round as a fraction of the real pool (paper: 0.1).")
    stop_fraction: float = field(
        2.0, help="Stop when the labels acquired reach this multiple of the real pool (paper: 1.0 pool-based, 2.0 SIGnAL)."
    )
    seed_size: int | None = field(None, help="Random initial labeled set; default is one round's budget.")
    annotator: Literal["model", "human"] = field(
        "model", help="Who labels synthetic items: a classifier trained on the full train split, or a human via files."
    )
    generator_update: Literal["ppo", "frozen", "shuffled"] = field(
        "ppo", help="SIGnAL ablations: ppo = the method; frozen = never update the generator; shuffled = PPO on the "
        "round's SIGnAL scores permuted among its valid candidates (does the reward's information matter?).")
    baselines: list[str] = field(
        default_factory=list, help="Pool-based strategies run after this run with the same seed, pool, seed set and "
        "budget (capped at the pool), into RUN_DIR/baselines/<name>; `signal-al run` then prints the comparison "
        "and writes RUN_DIR/accuracy.png.")
    synthetic_share: list[float] | None = field(
        None, help="SIGnAL's real -> synthetic budget schedule: [start, end] share of each round's budget reserved "
        "for synthetic candidates, linear from start (round 1) to end (last round); the rest goes to real pool items, "
        "each side by its own top scores. null: real and synthetic items compete in one ranking (the paper).")
    variant: str = field(
        "", help="A label appended to the method name in rows and reports (signal+<variant>), to compare "
        "settings of one strategy side by side.")
    annotator_max_steps: int | None = field(
        None, help="Cap the model annotator's training steps (it trains once per task and recipe, then is cached); "
        "for CPU demos, where full epochs over the train split take too long."
    )

    def __post_init__(self) -> None:
        check(0.0 < self.round_fraction <= 1.0, "active_learning.round_fraction", f"must be in (0, 1], got {self.round_fraction}")
        check(self.stop_fraction > 0, "active_learning.stop_fraction", f"must be positive, got {self.stop_fraction}")
        if self.seed_size is not None:
            check(self.seed_size >= 0, "active_learning.seed_size", f"must be >= 0, got {self.seed_size}")
        check(re.fullmatch(r"[A-Za-z0-9._-]*", self.variant) is not None, "active_learning.variant",
              f"must be letters, digits, '.', '_' or '-', got {self.variant!r}")
        if self.synthetic_share is not None:
            check(len(self.synthetic_share) == 2 and all(0.0 <= s <= 1.0 for s in self.synthetic_share),
                  "active_learning.synthetic_share", f"must be [start, end] with both in [0, 1], got {self.synthetic_share}")
        if self.annotator_max_steps is not None:
            check(self.annotator_max_steps > 0, "active_learning.annotator_max_steps",
                  f"must be positive, got {self.annotator_max_steps}")


POOL_BASED = ["random", "entropy", "bertkm", "badge", "cal", "coreset", "cluster", "qbc"]


@dataclass
class GridConfig:
    methods: list[str] = field(default_factory=lambda: list(POOL_BASED),
                               help="Strategies to compare (each runs with every seed).")
    seeds: int = field(3, help="Number of seeds (0 .. seeds-1); a seed fixes the pool and seed set for every method.")
    pool_based_stop_fraction: float = field(1.0, help="Stop fraction for pool-based methods (paper: 1.0).")
    tasks: list[str] = field(default_factory=list, help="Run the grid on each of these tasks "
                             "(default: data.task), into RUN_DIR/<task>-pool<pct>pct/.")
    pool_fractions: list[float] = field(default_factory=list, help="Run the grid with each of these real-pool "
                                        "fractions (default: data.pool_fraction).")
    parallel_runs: int = field(
        1, help="Pool-based runs executed at once in separate processes (each gets cpu_count/parallel_runs "
        "threads).")
    parallel_generator_runs: int = field(
        1, help="SIGnAL-family runs executed at once in separate processes. Slot s starts its own vLLM server on "
        "generator.server_url's port + s and, with several GPUs visible, gets GPU s (round-robin when there are "
        "fewer GPUs than slots: then add --gpu-memory-utilization to generator.server_args so the servers fit).")

    def __post_init__(self) -> None:
        check(self.seeds > 0, "experiment.seeds", f"must be positive, got {self.seeds}")
        check(self.parallel_runs > 0, "experiment.parallel_runs", f"must be positive, got {self.parallel_runs}")
        check(self.parallel_generator_runs > 0, "experiment.parallel_generator_runs",
              f"must be positive, got {self.parallel_generator_runs}")
        for fraction in self.pool_fractions:
            check(0.0 < fraction <= 1.0, "experiment.pool_fractions", f"must be in (0, 1], got {fraction}")
        check(len(self.methods) > 0, "experiment.methods", "must name at least one strategy")


@dataclass
class WandbConfig:
    enabled: bool = field(False, help="Log to Weights & Biases (needs `wandb login` or WANDB_API_KEY).")
    project: str = field("signal-al", help="wandb project.")
    entity: str | None = field(None, help="wandb entity (team or user).")
    mode: Literal["online", "offline", "disabled"] = field("online", help="wandb mode.")


@dataclass
class ExperimentConfig:
    name: str = field("signal-al", help="Run name; the run directory is output_dir/name.")
    output_dir: str = field("runs", help="Parent folder of run directories.")
    seed: int = field(0, help="Seed for the pool, the seed set, the test split, training and sampling.")
    device: str = field("auto", help="auto, cpu, cuda or cuda:N for the classifier (and in-process generator).")
    data: DataConfig = field(default_factory=DataConfig, help="The task and its pools.")
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig, help="The classifier retrained each round.")
    generator: GeneratorConfig = field(default_factory=GeneratorConfig, help="The LLM that writes candidates.")
    reward: RewardConfig = field(default_factory=RewardConfig, help="The SIGnAL KL-over-distance score.")
    active_learning: ActiveLearningConfig = field(default_factory=ActiveLearningConfig, help="Rounds, budget, strategy.")
    ppo: PPOConfig = field(default_factory=PPOConfig, help="The generator's PPO + LoRA update.")
    wandb: WandbConfig = field(default_factory=WandbConfig, help="Experiment tracking.")
    experiment: GridConfig = field(default_factory=GridConfig, help="Methods x seeds grid of `signal-al experiment`.")

    def __post_init__(self) -> None:
        generator = self.generator
        check(self.experiment.parallel_generator_runs == 1 or generator.backend != "vllm-server"
              or generator.start_server, "experiment.parallel_generator_runs",
              "runs at once need a server each: set generator.start_server: true (slot s uses server_url's port + s)")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def load_experiment_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """The experiment config from an optional YAML file and ``--set`` overrides."""
    return load_config(ExperimentConfig, path, overrides)
