"""``signal-al score``: SIGnAL scores of a file of texts under a run's classifier and labeled set."""

from __future__ import annotations

import argparse

from signal_al.cli.options import device, non_negative_int, output_file


def cmd_score(args: argparse.Namespace) -> int:
    from signal_al.data.local import read_table
    from signal_al.engine.store import RunStore
    from signal_al.integrations.files import score_file
    from signal_al.rewards.scorer import SignalScorer

    read_table(args.file)  # a missing or unreadable file fails before the classifier loads
    scorer = SignalScorer.from_run(args.run, args.round, device=args.device, device_setting="--device")
    info = scorer.run
    config = RunStore(info.run_dir).saved_config()
    text_column = args.text_column or config.data.text_column
    pair_column = args.text_pair_column
    if pair_column is None and info.pair_task:
        pair_column = config.data.text_pair_column or "text_pair"
    out, details = score_file(scorer, args.file, args.output, text_column=text_column, text_pair_column=pair_column,
                              label_names=info.label_names)
    mean = float(details.scores.mean()) if len(details.scores) else float("nan")
    print(f"scored {len(details.scores)} texts with round {info.round} of {info.run_dir} "
          f"({info.n_labeled} labeled; mean score {mean:.6g}) -> {out}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    score = commands.add_parser(
        "score", help="SIGnAL scores of a CSV/JSONL/Parquet file of texts under a run's classifier.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score every text of FILE with a run's reward: the round's classifier checkpoint, the labeled "
        "set it was trained on and the run's reward config. Writes the input with the columns signal_score, "
        "knn_distance (mean distance to the k nearest labeled items), kl (mean KL against their predictions), "
        "predicted_label and confidence, next to the input (FILE.scores.EXT) or to --output. Rows with an empty text "
        "are not scored (their columns stay empty; a warning says how many).",
        epilog="examples:\n  signal-al score --run runs/demo candidates.csv\n"
        "  signal-al score --run runs/demo --round 2 texts.jsonl --output scored.parquet",
    )
    score.add_argument("file", metavar="FILE", help="CSV, TSV, JSONL, JSON or Parquet file of texts.")
    score.add_argument("--run", required=True, metavar="RUN_DIR", help="The run folder (runs/<name>).")
    score.add_argument("--round", type=non_negative_int, default=None,
                       help="Round whose classifier scores (default: the latest).")
    score.add_argument("--output", "-o", metavar="FILE", type=output_file,
                       help="Where to write (the type follows the suffix).")
    score.add_argument("--text-column", help="Column holding the text (default: the run's data.text_column).")
    score.add_argument("--text-pair-column", help="Second text column for pair tasks (default: the run's).")
    score.add_argument("--device", type=device, default=None,
                       help="auto, cpu, cuda or cuda:N (default: the run's device).")
    score.set_defaults(handler=cmd_score)


__all__ = ["add_parser", "cmd_score"]
