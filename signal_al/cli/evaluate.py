"""``signal-al evaluate-generator``: generator checkpoints (base model, LoRA adapters) side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.generate import add_generator_flags
from signal_al.cli.options import (add_cache_arg, add_set_arg, cache, config_pairs, log, non_negative_int,
                                   output_folder, override_strings, positive_int, printable)

DESCRIPTION = (
    "Generate N examples with every checkpoint from the same in-context prompts and sampling seeds "
    "(the base model is round 0; default adapter: the run's latest) and report per checkpoint: the mean/std "
    "SIGnAL reward against the run's labeled set under its latest classifier, the fraction of valid outputs "
    "(after cleaning and dedup against the run's pool), distinct-1/2 and self-BLEU, label counts under the "
    "model annotator and their std, the mean distance to the nearest real pool example (Euclidean between "
    "L2-normalised classifier embeddings) and, with --accuracy-gain, the test accuracy gained by adding the "
    "samples to the labeled set. Writes generator_eval.csv/.md/.png and samples.jsonl."
)

EPILOG = """\
examples:
  signal-al evaluate-generator runs/demo                       # base vs latest adapter
  signal-al evaluate-generator runs/demo --all-adapters --n 128 --accuracy-gain
  signal-al evaluate-generator runs/demo --adapters adapters/round-001 adapters/round-003 --backend transformers"""


def cmd_evaluate_generator(args: argparse.Namespace) -> int:
    from signal_al.experiments.generator_eval import evaluate_run, plan_run_evaluation

    # plan_run_evaluation applies KEY=VALUE texts to the run's saved config: the flags' pairs go
    # after --set, serialised so that they parse back to exactly the same values
    overrides = [*args.overrides, *override_strings(config_pairs(args))]
    plan = plan_run_evaluation(Path(args.run_dir), adapters=args.adapters or (), all_adapters=args.all_adapters,
                               overrides=overrides, output_dir=Path(args.output_dir) if args.output_dir else None)
    if len(plan.checkpoints) == 1:
        log(f"{plan.run_dir} has no generator adapter yet: only the base model is evaluated")
    log(f"evaluating {', '.join(c.name for c in plan.checkpoints)} with {args.n} samples each")
    paths = evaluate_run(plan, n=args.n, seed=args.sample_seed, accuracy_gain=args.accuracy_gain,
                         cache_root=cache(args), log=log)
    print(printable(paths["markdown"].read_text(), newlines=True))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate-generator", help="Compare generator checkpoints (base model, LoRA adapters) side by side.",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION, epilog=EPILOG,
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="A run directory (config.yaml, state.json, "
                          "checkpoints/, adapters/).")
    evaluate.add_argument("--adapters", nargs="+", metavar="PATH",
                          help="Adapter folders to compare with the base model (absolute, or relative to the "
                          "current folder or to RUN_DIR; default: the run's latest adapter).")
    evaluate.add_argument("--all-adapters", action="store_true", help="Every adapters/round-* folder of the run.")
    evaluate.add_argument("--n", type=positive_int, default=64, help="Samples (prompts) per checkpoint (default 64).")
    evaluate.add_argument("--seed", dest="sample_seed", type=non_negative_int, default=None, metavar="S",
                          help="Seed of the prompts and sampling (default: the run's seed).")
    evaluate.add_argument("--accuracy-gain", action="store_true",
                          help="Also train the classifier on the labeled set with and without each "
                          "checkpoint's samples (annotator labels) and report the test accuracy gain.")
    evaluate.add_argument("--output-dir", metavar="DIR", type=output_folder, help="Where to write (default: RUN_DIR/generator_eval).")
    add_generator_flags(evaluate, source="the run's", negatable=True)
    add_set_arg(evaluate, help="Override a key of the run's config, e.g. --set generator.hf_batch_size=16.")
    add_cache_arg(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate_generator)


__all__ = ["add_parser", "cmd_evaluate_generator"]
