"""What does one active-learning round cost, phase by phase: a pool-based round against a SIGnAL round?

Runs the real loop twice at the ``--config`` settings (``configs/exp_offline.yaml``: rt-movies,
1 % pool, 16 prompts x 4 samples, rloo PPO), once with a pool-based strategy and once with
``signal``, each for rounds 0 (the random seed set) to the measured round (``--round``, default 2:
the first that generates with a trained adapter), in fresh run folders. The measured round is
timed by phase by wrapping the functions the loop calls (nothing in the package changes):

    generate        the generator's requests (vLLM server or transformers), without cleaning
    clean           dropping empty, chatty and duplicate candidates
    model_load      loading the previous round's classifier checkpoint and the fresh classifier
    classifier_pass the previous round's classifier over U ∪ L (probabilities, embeddings)
    score_select    the strategy's scores and its top-b
    annotate        ground truth for real items, the model annotator for synthetic ones
    classifier_train / test_eval   the fresh classifier of the round, then the test split
    rl_update       the PPO update (D_RL -> adapter, optimizer state saved)
    rl_trainer_load loading the policy for the run's one trainer (round 1, or a resumed run's first update)
    hot_load        loading the new adapter into the server
    heldout_lift    the adapter against the base model on the fixed held-out prompts
    checkpoint_state  the classifier checkpoint and the atomic state writes
    other           the rest of the round's wall time (waits, bookkeeping)

One-off costs are left out of the round's total and reported apart, marked "(once)": the vLLM
server's start (on first use, in round 1), the model annotator's training and the base model's
held-out answers (once per process). The last line is

    round: pool_s=… signal_s=… signal_over_pool=… top_phase=… top_phase_share=…

where ``top_phase`` is the SIGnAL round's costliest phase and its share of the round.

    python scripts/bench_round.py
    python scripts/bench_round.py --pool-method entropy --set generator.samples_per_prompt=2
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PHASES = ("generate", "clean", "model_load", "classifier_pass", "score_select", "annotate", "classifier_train", "test_eval",
          "rl_update", "hot_load", "heldout_lift", "checkpoint_state")
#: Costs a run pays once, not every round: timed, reported, and left out of the round's total.
ONE_OFF = ("server_start", "annotator_training", "heldout_base_answers")
#: Phases timed on their own when they run inside another; any other nested call counts to its parent.
NESTED = {"generate": {"clean"}, "annotate": {"annotator_training"}, "heldout_lift": {"heldout_base_answers"}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("configs/exp_offline.yaml"), help="Experiment config (YAML).")
    p.add_argument("--pool-method", default="entropy", help="The pool-based strategy to compare with.")
    p.add_argument("--signal-method", default="signal", help="The generating strategy (ablations: --set active_learning.generator_update=frozen).")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="Config override, as for `signal-al run` (repeatable).")
    p.add_argument("--out", type=Path, default=None, help="Keep the run folders here (default: a temp dir).")
    p.add_argument("--json", type=Path, default=None, help="Also write the phase table here.")
    p.add_argument("--round", dest="measured", type=int, default=2,
                   help="The round to time (default 2: the first whose generation uses a trained adapter, "
                   "which on a CPU server costs about twice the base model's; round 1 still generates with the base).")
    return p.parse_args(argv)


class PhaseClock:
    """Wall time per phase. A phase listed in :data:`NESTED` under the running one is timed on its own
    (and taken out of its parent's time); any other call inside a phase counts to that phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [phase, start, time spent in nested phases]
        self.active = False

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if not self.active or self._stack and name not in NESTED.get(self._stack[-1][0], ()):
            yield
            return
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            spent = time.perf_counter() - frame[1]
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - frame[2]
            if self._stack:
                self._stack[-1][2] += spent

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """Time every call of ``owner.attribute`` as phase ``name``."""
        original: Callable = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)


def instrument(clock: PhaseClock) -> None:
    """Wrap the functions a round calls, where the loop and its collaborators look them up."""
    import transformers

    import signal_al.classifier.fit_eval as fit_eval
    import signal_al.engine.annotation.oracle as oracle
    import signal_al.engine.generator.agent as agent
    import signal_al.engine.loop as loop
    import signal_al.engine.selection as selection
    import signal_al.generation.server.process as serving
    import signal_al.trainers.ppo_trainer as ppo_trainer
    from signal_al.engine.store import RunStore
    from signal_al.generation.generator import CandidateGenerator as Generator
    from signal_al.strategies.base import QueryStrategy

    generate = Generator.generate

    @functools.wraps(generate)
    def timed_generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        # the base model's held-out answers are generated once per process (adapter=None)
        name = "heldout_base_answers" if kwargs.get("adapter", True) is None else "generate"
        with clock.phase(name):
            return generate(self, *args, **kwargs)

    Generator.generate = timed_generate
    start_server = serving.managed_server

    @contextlib.contextmanager
    def timed_server(*args: Any, **kwargs: Any) -> Iterator[Any]:
        # SIGnAL starts its server on first use, inside round 1: a once-per-run cost
        with contextlib.ExitStack() as stack:
            with clock.phase("server_start"):
                server = stack.enter_context(start_server(*args, **kwargs))
            yield server

    serving.managed_server = timed_server
    clock.wrap(Generator, "_clean", "clean")
    clock.wrap(Generator, "load_adapter", "hot_load")
    clock.wrap(selection, "pool_view", "classifier_pass")
    clock.wrap(transformers.AutoModelForSequenceClassification, "from_pretrained", "model_load")
    for strategy in _subclasses(QueryStrategy):
        if "select" in vars(strategy):
            clock.wrap(strategy, "select", "score_select")
    clock.wrap(loop, "annotate_round", "annotate")
    clock.wrap(oracle, "load_or_train_model_annotator", "annotator_training")
    clock.wrap(fit_eval, "train_classifier", "classifier_train")
    clock.wrap(fit_eval, "evaluate", "test_eval")
    clock.wrap(ppo_trainer, "train_generator", "rl_update")  # the accelerate launcher's job
    clock.wrap(ppo_trainer.PPOTrainer, "train", "rl_update")  # the run's one in-process trainer
    clock.wrap(ppo_trainer.PPOTrainer, "save", "rl_update")
    clock.wrap(ppo_trainer.PPOTrainer, "__init__", "rl_trainer_load")  # once per run: the trainer lives on
    clock.wrap(agent.SignalAgent, "_heldout_gain", "heldout_lift")
    for method in ("save_checkpoint", "persist", "remove_stale_checkpoints"):
        clock.wrap(RunStore, method, "checkpoint_state")


def _subclasses(cls: type) -> list[type]:
    import signal_al.strategies  # noqa: F401  (registers every strategy class)

    found, todo = [cls], [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def time_round(config: Any, clock: PhaseClock, log: Callable[[str], None], measured: int = 2) -> dict[str, float]:
    """Rounds 0 to ``measured`` of ``config``'s run; round ``measured``'s phases (and ``total``,
    ``other``), and the one-off costs of whichever round paid them."""
    from signal_al.engine.loop import ActiveLearningRun

    run = ActiveLearningRun(config, progress=False, log=log)
    original_round = run._round
    walls: dict[int, float] = {}
    seen: dict[int, dict[str, float]] = {}

    def round_with_clock(state: Any, r: int, targets: list[int], total: int) -> Any:
        clock.seconds, clock.active = {}, r >= 1
        start = time.perf_counter()
        try:
            return original_round(state, r, targets, total)
        finally:
            walls[r] = time.perf_counter() - start
            clock.active = False
            seen[r] = dict(clock.seconds)

    run._round = round_with_clock
    run.run()
    if measured not in walls:
        raise SystemExit(f"{config.active_learning.strategy}: the run ended before round {measured}; lower "
                         "active_learning.round_fraction or --round")
    phases = {name: seen[measured].get(name, 0.0) for name in PHASES}
    once = {name: sum(row.get(name, 0.0) for row in seen.values()) for name in ONE_OFF}
    wall = walls[measured] - sum(seen[measured].get(name, 0.0) for name in ONE_OFF)
    phases["other"] = max(0.0, wall - sum(phases.values()))
    phases["total"] = wall
    return {**phases, **{f"{name} (once)": seconds for name, seconds in once.items()}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-round-"))
    clock = PhaseClock()
    instrument(clock)
    results: dict[str, dict[str, float]] = {}
    for method in (args.pool_method, args.signal_method):
        probe = load_config(ExperimentConfig, args.config, args.overrides)
        if args.measured < 1:
            raise SystemExit("--round must be at least 1 (round 0 is the random seed set)")
        stop = probe.active_learning.round_fraction * (args.measured + 1)
        overrides = [*args.overrides, f"name=bench-round-{method}", f"output_dir={out}",
                     f"active_learning.strategy={method}", f"active_learning.stop_fraction={stop:g}",
                     "wandb.enabled=false"]
        config = load_config(ExperimentConfig, args.config, overrides)
        start = time.perf_counter()
        results[method] = time_round(config, clock, log=lambda line: print(f"  [{method}] {line}", flush=True),
                                     measured=args.measured)
        print(f"{method}: rounds 0-{args.measured} took {time.perf_counter() - start:.0f} s (one-off costs "
              f"included); round {args.measured} by phase:", flush=True)
        for name, seconds in results[method].items():
            print(f"  {name:<17} {seconds:8.2f} s", flush=True)

    pool, signal = results[args.pool_method], results[args.signal_method]
    phases = {k: signal[k] for k in (*PHASES, "other")}
    top = max(phases, key=phases.get)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"round: pool_s={pool['total']:.1f} signal_s={signal['total']:.1f} "
          f"signal_over_pool={signal['total'] / pool['total']:.2f} top_phase={top} "
          f"top_phase_share={phases[top] / signal['total']:.2f}")
    return 0


if __name__ == "__main__":
    from signal_al.core.errors import UserError

    try:
        sys.exit(main())
    except UserError as error:  # a bad config, method or override: one line, like the CLI
        print(f"bench_round.py: error: {error}", file=sys.stderr)
        sys.exit(2)
