#!/usr/bin/env python
"""Did a bench run learn the task, or the texts of its training prompts? Base against its adapter on both prompt pools.

``scripts/bench_rl.py`` trains on prompts whose in-context examples come from one part of the
train split (the training pool, 400 texts) and evaluates on prompts from another (the held-out
pool). When the training reward rises but the held-out gain does not, either the gain does
not generalise beyond the training pool's texts, or the two measurements differ. This script
re-creates the run's setting from its ``config.json`` (same seed: same pools, classifier,
scorer and annotator), serves the saved adapter, and compares it with the base model on
fresh prompts of each pool (``--pools``), every prompt answered by both with the same seeds:

  train    new prompts from the training pool (the held-out seeds, never used in training)
  heldout  the run's own held-out prompts (the same samples as its evaluations, so this also
           checks that the adapter is the one the run evaluated)
  train-draws  the training pool drawn exactly as a training iteration draws it (--prompts per
           call, the seeds of the iterations after the run's last): where the training reward
           and these disagree, the difference is in the policies, not in how they are measured
  heldout-fresh  new prompts of the held-out pool at a seed the run never used: an evaluation
           independent of all the run made, as large as --samples asks (fix it before looking)

Each pool's paired gain comes with its 95 % interval, clustered z and the mean words on both
sides, as in the bench. Rows go to ``OUT/transfer.jsonl``, samples to ``OUT/samples.jsonl``.

    python scripts/rl_bench_transfer.py results/rl-bench/runs/signal40-s2 \\
        --adapter /tmp/bench/signal40-s2/adapters/iter-040 --out results/rl-bench/transfer/signal40-s2

Last line: ``transfer: run=.. reward=.. <pool>_gain=.. <pool>_lo=.. <pool>_hi=.. <pool>_z=..
<pool>_n=.. <pool>_words=..`` (per pool; ``<pool>_words`` is base->adapter) ``wall_s=..``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("run", type=Path, help="A bench run's folder (its config.json is read).")
    p.add_argument("--adapter", type=Path, default=None,
                   help="The saved adapter folder (default: the last one under RUN/adapters/).")
    p.add_argument("--pools", default="train,heldout",
                   help="Comma-separated: train, heldout, train-draws, heldout-fresh (default train,heldout).")
    p.add_argument("--samples", type=int, default=None,
                   help="Samples a side for the train and heldout-fresh pools (default: the run's held-out "
                        "count; heldout always repeats the run's own).")
    p.add_argument("--out", type=Path, default=None, help="Where the rows and samples go (default: RUN/transfer).")
    return p.parse_args(argv)


def last_adapter(run: Path) -> Path:
    """The latest ``iter-NNN`` adapter folder of a bench run."""
    found = sorted((run / "adapters").glob("iter-*"))
    if not found:
        raise FileNotFoundError(f"{run}/adapters: no saved adapter; pass --adapter")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    from signal_al.experiments.rl_bench import TRANSFER_POOLS, RLBench, RLBenchConfig
    from signal_al.experiments.rl_bench import format_stat as fmt

    args = parse_args(argv)
    config_file = args.run / "config.json"
    if not config_file.is_file():
        print(f"error: {config_file}: not found (RUN must be a bench run's folder)", file=sys.stderr)
        return 2
    pools = tuple(p.strip() for p in args.pools.split(",") if p.strip())
    bad = [p for p in pools if p not in TRANSFER_POOLS]
    if bad or not pools:
        print(f"error: --pools: any of {', '.join(TRANSFER_POOLS)}, got {args.pools!r}", file=sys.stderr)
        return 2
    if args.samples is not None and args.samples < 1:
        print(f"error: --samples: a positive whole number, got {args.samples}", file=sys.stderr)
        return 2
    try:
        adapter = args.adapter or last_adapter(args.run)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (adapter / "adapter_config.json").is_file():
        print(f"error: --adapter {adapter}: no adapter_config.json (not a saved adapter folder)", file=sys.stderr)
        return 2
    config = RLBenchConfig(**json.loads(config_file.read_text()))
    out = args.out or args.run / "transfer"
    start = time.perf_counter()
    try:
        rows = RLBench(config, out, log=lambda msg: print(msg, flush=True)).transfer(adapter, pools, samples=args.samples)
    except FileExistsError as exc:
        print(f"error: --out {exc}", file=sys.stderr)
        return 2
    fields = [f"run={args.run.name}", f"reward={config.reward}"]
    for row in rows:
        p = row["pool"].replace("-", "_")
        fields += [f"{p}_gain={fmt(row['gain'], '+.4f')}", f"{p}_lo={fmt(row['gain_lo'], '+.4f')}",
                   f"{p}_hi={fmt(row['gain_hi'], '+.4f')}", f"{p}_z={fmt(row['paired_z'], '.2f')}",
                   f"{p}_n={row['paired_n']}",
                   f"{p}_words={fmt(row['words_base'], '.1f')}->{fmt(row['words_trained'], '.1f')}"]
    print(f"raw record: {out}")
    print("transfer: " + " ".join(fields) + f" wall_s={time.perf_counter() - start:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
