"""Does the SIGnAL reward favour text about the prompt over examples?

For every SIGnAL-family method under the given grid folders (runs named <method>-seed<k>),
prints: kept candidates and the share that is meta-commentary ("In this example, Sentence 1
...", see signal_al.generation.cleaning.is_meta_commentary), the share of the selected
synthetic items that is, and the mean D_RL reward of meta vs other kept candidates (the raw
SIGnAL score unless reward.whiten_kept was on).

    python scripts/meta_commentary_report.py runs/exp-offline/rt-movies-pool1pct
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from signal_al.generation.cleaning import is_meta_commentary


def family_stats(runs: list[Path]) -> dict[str, float]:
    kept = meta = selected = selected_meta = 0
    rewards: dict[bool, list[float]] = {True: [], False: []}
    for run in runs:
        state = json.loads((run / "state.json").read_text())
        labeled = {a["id"] for a in state["annotations"]}
        texts = {item["id"]: item["text"] for item in state["items"] if item["source"] == "synthetic"}
        flags = {key: is_meta_commentary(text) for key, text in texts.items()}
        kept += len(flags)
        meta += sum(flags.values())
        selected += sum(key in labeled for key in flags)
        selected_meta += sum(flag for key, flag in flags.items() if key in labeled)
        for rl_file in sorted((run / "rl").glob("round-*.jsonl")):
            for line in rl_file.read_text().splitlines():
                row = json.loads(line)
                key = row["metadata"]["id"]
                if row["metadata"]["kept"] and key in flags:
                    rewards[flags[key]].append(row["reward"])
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return {"runs": len(runs), "kept": kept, "meta_share": meta / max(kept, 1), "selected": selected,
            "selected_meta_share": selected_meta / max(selected, 1), "reward_meta": mean(rewards[True]),
            "reward_other": mean(rewards[False]), "n_reward_meta": len(rewards[True]),
            "n_reward_other": len(rewards[False])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grids", nargs="+", type=Path, help="Folders holding <method>-seed<k> run folders.")
    args = parser.parse_args()
    print("| runs | method (seeds) | kept | meta share | selected synthetic | meta share of selected "
          "| D_RL reward meta (n) | other (n) |")
    print("|" + " --- |" * 8)
    for grid in args.grids:
        if not grid.is_dir():
            parser.error(f"{grid}: no such folder")
        families: dict[str, list[Path]] = defaultdict(list)
        for state in sorted(grid.glob("*/state.json")):
            method = state.parent.name.rsplit("-seed", 1)[0]
            if method.startswith("signal"):
                families[method].append(state.parent)
        for method, runs in sorted(families.items()):
            s = family_stats(runs)
            print(f"| {grid} | {method} ({s['runs']}) | {s['kept']} | {s['meta_share']:.2f} | {s['selected']} | "
                  f"{s['selected_meta_share']:.2f} | {s['reward_meta']:.3f} ({s['n_reward_meta']}) | "
                  f"{s['reward_other']:.3f} ({s['n_reward_other']}) |")


if __name__ == "__main__":
    main()
