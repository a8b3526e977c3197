"""``signal-al report``: the results table and plots of saved runs, or of a results folder's raw records."""

from __future__ import annotations

import argparse
from pathlib import Path

from signal_al.cli.options import output_folder, printable
from signal_al.core.errors import UserError

DESCRIPTION = """\
Collect metrics.jsonl of every run under RUN_DIR(s) and write results.md, results.csv,
endpoints.csv, accuracy.png and macro_f1.png, plus generator_stats.md/.csv/.png (reward, KL,
diversity, synthetic share per round) for SIGnAL runs. Several RUN_DIRs (e.g. a pool-based grid
and a SIGnAL grid with the same seeds) are combined.

results.md leads with what was fixed before looking at any result:
- the pool-based reference: the best point of any pool-based method's mean curve over every
  acquired %, given with the pool-based mean at 100 % (where every pool-based method holds the
  same labels, so their differences there are training noise); the plot draws both as levels
  (dotted and dash-dotted), and its last panel draws SIGnAL's family past 100 % against the
  reference, paired on the seed;
- the primary endpoints, one number per seed, paired by seed: past the pool, signal's mean
  accuracy over 110-200 % minus the reference; RL matters, signal minus signal-frozen, mean over
  20-200 %; before the pool, the area under 10-100 % against every pool-based method. Each with
  a 95 % t interval over seeds, a p-value Holm-corrected for the number of endpoints, the
  smallest effect the seeds detect (80 % power, two-sided 5 %) and the seeds a 2-point effect
  needs.
The per-step tables follow, marked secondary; every cell shows its seed count (one seed: no ±).

Raw records: --export-raw DIR copies each run's metrics.jsonl, config.yaml and labeled ids per
round (kilobytes; no checkpoints) into DIR/raw/ and writes DIR's report from those records
alone. A RUN_DIR that is such a results folder (it holds raw/report.json), or a folder above
several, is regenerated in place from its records with the options it was made with.
"""


def cmd_report(args: argparse.Namespace) -> int:
    from signal_al.experiments.raw_records import export_raw, regenerate, results_folders
    from signal_al.experiments.report import write_report

    for folder in args.run_dir:
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: no such folder")
    roots = [Path(folder) for folder in args.run_dir]
    if args.export_raw:
        if args.out:
            raise UserError("--export-raw DIR writes the report into DIR: drop --out")
        reports = [export_raw(roots, Path(args.export_raw), title=args.title or "", baseline=args.baseline or "random")]
    else:
        found = {root: results_folders(root) for root in roots}
        if any(found.values()):
            runs = [str(root) for root, folders in found.items() if not folders]
            if runs:
                raise UserError(f"{', '.join(runs)}: no results folder (raw/report.json) here, while the other "
                                "RUN_DIRs are results folders; report run folders and results folders separately")
            if args.out:
                raise UserError("a results folder is regenerated in place from its raw records: drop --out")
            reports = [regenerate(folder, title=args.title, baseline=args.baseline)
                       for folders in found.values() for folder in folders]
        else:
            if len(roots) > 1 and not args.out:
                raise UserError("several RUN_DIRs are combined into one report: pass --out")
            reports = [write_report(roots[0] if len(roots) == 1 else roots, Path(args.out) if args.out else None,
                                    title=args.title or "", baseline=args.baseline or "random")]
    if len(reports) == 1:
        print(printable(reports[0]["markdown"].read_text(), newlines=True))
    for paths in reports:
        for kind, path in paths.items():
            print(f"{kind}: {path}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="Results tables and plots from saved runs, or again from a results folder's raw records.",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  signal-al report runs/exp-offline/rt-movies-pool1pct --export-raw results/rt-movies-1pct --title T\n"
        "  signal-al report results/rt-movies-1pct   # regenerate from its raw records\n"
        "  signal-al report results                  # every results folder below results/",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", nargs="+",
                        help="Folder holding run folders (any depth), or results folders to regenerate.")
    report.add_argument("--out", type=output_folder, help="Where to write (default: RUN_DIR; required with several).")
    report.add_argument("--export-raw", metavar="DIR",
                        help="Copy the runs' raw records into DIR/raw/ and write DIR's report from them alone.")
    report.add_argument("--title", help="Plot title (default for a results folder: the one it was made with).")
    report.add_argument("--baseline",
                        help="Strategy the per-step paired gains are measured against (default: random, or for a "
                        "results folder the one it was made with), e.g. signal-frozen.")
    report.set_defaults(handler=cmd_report)


__all__ = ["add_parser", "cmd_report"]
