"""The experiment configuration: one dataclass per section, every field with help text.

A YAML file under ``configs/`` fills these sections; ``--set section.key=value`` overrides
any field. ``signal-al config show`` prints the resolved config and ``signal-al config
keys`` lists every key with its type, default and help. Range checks live in each
section's ``__post_init__`` so a bad value is rejected where it is read, naming its key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from signal_al.classifier.config import ClassifierConfig
from signal_al.core.config_io import check, field
from signal_al.core.runtime import device_problem
from signal_al.data.config import DataConfig
from signal_al.generation.config import GeneratorConfig
from signal_al.rewards.config import RewardConfig
from signal_al.strategies import STRATEGIES, pool_based_names
from signal_al.trainers.grpo_config import GRPOOptions
from signal_al.trainers.ppo_config import PPOConfig


@dataclass
class ActiveLearningConfig:
    strategy: str = field("signal", help=f"Selection rule: {', '.join(STRATEGIES)}.")
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
    heldout_samples: int = field(
        32, help="SIGnAL: after each generator update, the new adapter and the base model answer this many fixed "
        "held-out prompts (same prompts and seeds every round), rewarded like the update (the round's classifier, "
        "the same shaping); the metrics row gets the paired gain heldout_gain(_pct) with its 95 % interval "
        "(heldout_gain_lo/hi_pct, t over prompts) and clustered z, the mean words on both sides, and kl_new_base, "
        "KL(new adapter || base) on the new adapter's own samples. 0 turns it off.")
    heldout_samples_per_prompt: int = field(
        4, help="Samples per held-out prompt (one request with vLLM's n, like the training rollouts): "
        "heldout_samples / this many prompts. Each prompt's forward pass is paid once, and on a CPU server a "
        "prompt costs more than the samples it starts; base and adapter still pair sample by sample.")
    heldout_every: int = field(
        1, help="Measure the held-out lift (heldout_samples) after the updates of rounds 1, 1 + k, 1 + 2k, ... only: "
        "on a CPU server it is a SIGnAL round's third cost (adapter generation), and a grid's endpoints do not use "
        "it. 1: every round.")
    annotator_max_steps: int | None = field(
        None, help="Cap the model annotator's training steps (it trains once per task and recipe, then is cached); "
        "for CPU demos, where full epochs over the train split take too long."
    )

    def __post_init__(self) -> None:
        check(0.0 < self.round_fraction <= 1.0, "active_learning.round_fraction", f"must be in (0, 1], got {self.round_fraction}")
        check(0.0 < self.stop_fraction <= MAX_STOP_FRACTION, "active_learning.stop_fraction",
              f"must be in (0, {MAX_STOP_FRACTION:g}], got {self.stop_fraction}")
        if self.seed_size is not None:  # 0 would leave round 0 nothing to train on
            check(self.seed_size > 0, "active_learning.seed_size", f"must be positive or null, got {self.seed_size}")
        check(bool(self.strategy.strip()), "active_learning.strategy", "must not be empty")
        check(re.fullmatch(r"[A-Za-z0-9._-]*", self.variant) is not None, "active_learning.variant",
              f"must be letters, digits, '.', '_' or '-', got {self.variant!r}")
        if self.synthetic_share is not None:
            check(len(self.synthetic_share) == 2 and all(0.0 <= s <= 1.0 for s in self.synthetic_share),
                  "active_learning.synthetic_share", f"must be [start, end] with both in [0, 1], got {self.synthetic_share}")
        check(self.heldout_samples >= 0, "active_learning.heldout_samples", f"must be >= 0, got {self.heldout_samples}")
        check(self.heldout_samples_per_prompt >= 1, "active_learning.heldout_samples_per_prompt",
              f"must be >= 1, got {self.heldout_samples_per_prompt}")
        check(self.heldout_every >= 1, "active_learning.heldout_every", f"must be >= 1, got {self.heldout_every}")
        if self.annotator_max_steps is not None:
            check(self.annotator_max_steps > 0, "active_learning.annotator_max_steps",
                  f"must be positive, got {self.annotator_max_steps}")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a newline, a tab, an escape or another control character."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run folder's name, or None.

    A run folder is ``output_dir/name``: a name that leaves ``output_dir`` would make the run write
    (and delete stale checkpoints) in a folder it does not own; control characters and a leading
    ``-`` make a folder that shell commands and listings show wrongly or read as an option.
    """
    if not name or name in (".", "..") or any(c in name for c in "/\\"):
        return "no '/', '\\' or '..'"
    if name.strip() != name:
        return "no surrounding spaces"
    if has_control_characters(name):
        return "no newline, tab or other control character"
    if name.startswith("-"):
        return "no leading '-', which commands read as an option"
    if len(name.encode("utf-8")) > 255:
        return "at most 255 bytes"
    return None


#: Upper bound of stop fractions: 100 x the real pool is far past any experiment, and a larger value
#: only makes the acquisition grid huge.
MAX_STOP_FRACTION = 100.0
#: Seeds are combined into training seeds as seed x 1000 + round, which must stay a 64-bit integer.
MAX_SEED = 2**31 - 1

@dataclass
class GridConfig:
    methods: list[str] = field(default_factory=pool_based_names,
                               help="Strategies to compare (each runs with every seed; default: every pool-based one).")
    seeds: int = field(3, help="Number of seeds (first_seed .. first_seed+seeds-1); a seed fixes the pool and seed set "
                       "for every method.")
    first_seed: int = field(0, help="The grid's first seed. Splits one grid's seeds across machines or sessions: "
                            "seeds=3 on one and first_seed=3 seeds=2 on another write the cells <method>-seed0..4 "
                            "that one seeds=5 grid writes, so their folders merge into one grid and one report.")
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
        check(self.seeds <= 10_000, "experiment.seeds", f"must be at most 10000, got {self.seeds}")
        check(0 <= self.first_seed <= MAX_SEED - self.seeds + 1, "experiment.first_seed",
              f"must be in [0, {MAX_SEED - self.seeds + 1}] (its last seed is a run's seed, at most {MAX_SEED}), "
              f"got {self.first_seed}")
        check(0.0 < self.pool_based_stop_fraction <= MAX_STOP_FRACTION, "experiment.pool_based_stop_fraction",
              f"must be in (0, {MAX_STOP_FRACTION:g}], got {self.pool_based_stop_fraction}")
        for task in self.tasks:
            check(bool(task.strip()), "experiment.tasks", "must not hold an empty task")
            # each task names a folder of the grid (RUN_DIR/<task>-pool<pct>pct)
            check(not has_control_characters(task), "experiment.tasks",
                  f"must not hold control characters (a newline, a tab ...), got {task!r}")
        check(self.parallel_runs > 0, "experiment.parallel_runs", f"must be positive, got {self.parallel_runs}")
        check(self.parallel_generator_runs > 0, "experiment.parallel_generator_runs",
              f"must be positive, got {self.parallel_generator_runs}")
        for fraction in self.pool_fractions:
            check(0.0 < fraction <= 1.0, "experiment.pool_fractions", f"must be in (0, 1], got {fraction}")
        check(len(self.methods) > 0, "experiment.methods", "must name at least one strategy")
        for name, values in (("methods", self.methods), ("tasks", self.tasks), ("pool_fractions", self.pool_fractions)):
            twice = sorted({str(v) for v in values if values.count(v) > 1})
            check(not twice, f"experiment.{name}", f"lists {', '.join(twice)} more than once (each is one set of "
                  "run folders)")


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
    grpo: GRPOOptions = field(default_factory=GRPOOptions, help="What TRL's GRPO adds to the ppo section "
                              "(`signal-al train-generator --trainer grpo`).")
    wandb: WandbConfig = field(default_factory=WandbConfig, help="Experiment tracking.")
    experiment: GridConfig = field(default_factory=GridConfig, help="Methods x seeds grid of `signal-al experiment`.")

    def __post_init__(self) -> None:
        # the run folder is output_dir/name: a name that leaves output_dir would make the run write (and delete
        # stale checkpoints) in a folder it does not own
        problem = folder_name_problem(self.name)
        check(problem is None, "name", f"must be a folder name ({problem}), got {self.name!r}")
        check(bool(self.output_dir.strip()), "output_dir", "must not be empty (use . for the current folder)")
        check(not has_control_characters(self.output_dir), "output_dir",
              f"must not hold control characters (a newline, a tab ...), got {self.output_dir!r}")
        check(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}], got {self.seed}")
        check(device_problem(self.device) is None, "device", str(device_problem(self.device)))
        generator = self.generator
        slots = self.experiment.parallel_generator_runs
        check(slots == 1 or generator.backend != "vllm-server"
              or generator.start_server, "experiment.parallel_generator_runs",
              "runs at once need a server each: set generator.start_server: true (slot s uses server_url's port + s)")
        if slots > 1 and generator.backend == "vllm-server":
            last = (urlparse(generator.server_url).port or 8000) + slots - 1
            check(last <= 65535, "experiment.parallel_generator_runs",
                  f"{slots} runs at once put the last server on port {last} (generator.server_url's port + "
                  f"{slots - 1}), past 65535; choose a lower port in generator.server_url")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

