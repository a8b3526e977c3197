"""``signal-al check-annotator``: how often the model annotator's labels of synthetic items disagree
with a stronger reference annotator."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.options import output_file
from signal_al.core.errors import UserError


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def cmd_check_annotator(args: argparse.Namespace) -> int:
    from signal_al.core.io_utils import atomic_write_json
    from signal_al.experiments.annotator_check import check_run, find_runs, proportion

    runs = find_runs([Path(folder) for folder in args.run_dir])
    steps = None if args.reference_steps == "full" else int(args.reference_steps)
    cache: dict = {}
    checks = []
    print("| run | synthetic labels | disagree | rate % (95 % CI) | on the test split % (95 % CI) |")
    print("|---|---|---|---|---|")
    skipped = []
    for run in runs:
        check = check_run(run, steps, annotators=cache)
        if check.synthetic["n"] == 0:  # a pool-based run, or one that has not labeled a synthetic item yet
            skipped.append(run)
            continue
        checks.append(check)
        s, t = check.synthetic, check.test
        print(f"| {run} | {s['n']} | {s['disagree']} | {_percent(s['rate'])} ({_percent(s['low'])}–"
              f"{_percent(s['high'])}) | {_percent(t['rate'])} ({_percent(t['low'])}–{_percent(t['high'])}) |",
              flush=True)
    if skipped:
        print(f"\nskipped {len(skipped)} run(s) without synthetic labels: {', '.join(r.name for r in skipped)}")
    if not checks:
        raise UserError(f"no run under {', '.join(args.run_dir)} has synthetic labels to check")
    n = sum(c.synthetic["n"] for c in checks)
    differ = sum(c.synthetic["disagree"] for c in checks)
    pooled = proportion(differ, n)
    print(f"\nall runs: {differ} of {n} synthetic labels disagree with the reference: {_percent(pooled['rate'])} % "
          f"(95 % CI {_percent(pooled['low'])}–{_percent(pooled['high'])})")
    for task in sorted({c.task for c in checks}):
        first = next(c for c in checks if c.task == task)
        print(f"{task}: the annotators disagree on {_percent(first.test['rate'])} % of the {first.test['n']} test "
              f"rows; test accuracy: annotator {_percent(first.annotator_test_accuracy)} %, "
              f"reference {_percent(first.reference_test_accuracy)} %")
    if args.out:
        atomic_write_json(Path(args.out), {"reference_steps": steps, "pooled": pooled,
                                           "runs": [c.to_dict() for c in checks]})
        print(f"json: {args.out}")
    return 0


def _steps(text: str) -> str:
    if text != "full" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of steps or 'full', got {text!r}")
    return text


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check-annotator", help="Disagreement of the model annotator's synthetic labels with a stronger annotator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Beyond the real pool every new label is a synthetic item labeled by the model annotator, and "
        "generated text has no ground truth. For every run under RUN_DIR(s), relabel its synthetic items with a "
        "reference annotator (the run's recipe trained for --reference-steps; trained once and cached) and report "
        "the share of labels that differ, with a 95 % Wilson interval, next to the two annotators' disagreement "
        "on the task's test split (real text neither trained on: the rate to expect on real text).",
        epilog="example:\n  signal-al check-annotator runs/rl-matters --out results/annotator-check.json",
    )
    check.add_argument("run_dir", metavar="RUN_DIR", nargs="+", help="A run folder, or a folder holding run folders.")
    check.add_argument("--reference-steps", type=_steps, default="full",
                       help="Training steps of the reference annotator, or 'full' for the recipe's full epochs "
                       "(default: full).")
    check.add_argument("--out", metavar="FILE", type=output_file, help="Also write every run's numbers as JSON.")
    check.set_defaults(handler=cmd_check_annotator)


__all__ = ["add_parser", "cmd_check_annotator"]
