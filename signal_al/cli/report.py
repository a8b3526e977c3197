"""``signal-al report``: the results table and plots of saved runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.options import output_folder, printable
from signal_al.errors import UserError


def cmd_report(args: argparse.Namespace) -> int:
    from signal_al.evaluation.report import write_report

    if len(args.run_dir) > 1 and not args.out:
        raise UserError("several RUN_DIRs are combined into one report: pass --out")
    for folder in args.run_dir:
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such folder")
    roots = [Path(folder) for folder in args.run_dir]
    paths = write_report(roots[0] if len(roots) == 1 else roots, Path(args.out) if args.out else None,
                         title=args.title or "", baseline=args.baseline)
    print(printable(paths["markdown"].read_text(), newlines=True))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="Regenerate the results table and plots from saved runs.",
        description="Collect metrics.jsonl of every run under RUN_DIR(s) and write results.md, results.csv, "
        "accuracy.png and macro_f1.png, plus generator_stats.md/.csv/.png (reward, KL, diversity, synthetic share "
        "per round) for SIGnAL runs. Where SIGnAL runs go past 100 % of the pool, results.md also gives their "
        "per-seed gain over the best pool-based method at 100 % (the pool ceiling: a dotted line in the plot, "
        "and a panel of its own that draws the gain). Several RUN_DIRs (e.g. a pool-based grid and a SIGnAL grid "
        "with the same seeds) are combined.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", nargs="+", help="Folder holding run folders (any depth).")
    report.add_argument("--out", type=output_folder, help="Where to write (default: RUN_DIR; required with several).")
    report.add_argument("--title", help="Plot title.")
    report.add_argument("--baseline", default="random",
                        help="Strategy the paired gains are measured against (default: random), e.g. signal-frozen.")
    report.set_defaults(handler=cmd_report)


__all__ = ["add_parser", "cmd_report"]
