"""A small fake grid of run folders, the same every time: the source of the committed results
folder ``tests/data/report-grid`` (see its README) and of the report tests.

A 20-item pool with 2 labels a round and 400 test rows. ``random`` and ``badge`` run seeds 0-2 to
100 %, ``coreset`` seeds 0-1; ``signal`` runs seeds 0-2 to 200 %, ``signal-frozen`` seeds 0-1 to
200 % and seed 2 to 150 % only, so seed counts differ between cells and one seed cannot be paired
over a whole window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

POOL, PER_ROUND, TEST_ROWS = 20, 2, 400
#: method -> (seeds, last acquired % per seed, accuracy offset)
GRID = {
    "random": ((0, 1, 2), (100, 100, 100), 0.00),
    "badge": ((0, 1, 2), (100, 100, 100), 0.02),
    "coreset": ((0, 1), (100, 100), 0.01),
    "signal": ((0, 1, 2), (200, 200, 200), 0.015),
    "signal-frozen": ((0, 1, 2), (200, 200, 150), 0.005),
}
TITLE = "fake grid: 20-item pool, 400 test rows"


def _accuracy(rng: np.random.Generator, pct: int, offset: float, seed: int) -> float:
    """A learning curve that flattens past the pool, in whole test rows."""
    level = 0.55 + 0.17 * (1 - np.exp(-min(pct, 100) / 40)) + 0.02 * max(0, pct - 100) / 100
    value = level + (offset if pct > 10 else 0.0) + 0.01 * (seed - 1) + rng.normal(0, 0.015)
    return round(float(np.clip(value, 0, 1)) * TEST_ROWS) / TEST_ROWS


def write_run(folder: Path, method: str, seed: int, stop: int, offset: float) -> None:
    """One run folder: config.yaml, metrics.jsonl and labeled.jsonl as a run writes them."""
    rng = np.random.default_rng([seed, len(method), sum(map(ord, method))])
    seed_rng = np.random.default_rng(seed)  # round 0 (the seed set) is the same for every method
    generative = method.startswith("signal")
    folder.mkdir(parents=True)
    config = {"name": folder.name, "seed": seed, "data": {"task": "rt-movies", "pool_size": POOL},
              "active_learning": {"strategy": "signal" if generative else method,
                                  "generator_update": {"signal": "ppo", "signal-frozen": "frozen"}.get(method, "ppo"),
                                  "stop_fraction": stop / 100}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows, labeled, synthetic, real_left = [], [], 0, list(range(POOL))
    for r, pct in enumerate(range(10, stop + 1, 10)):
        picked_synthetic = 0 if not generative or r == 0 else min(PER_ROUND, int(rng.integers(0, 2)) + (pct > 100))
        picked_synthetic = PER_ROUND if not real_left else picked_synthetic
        for k in range(PER_ROUND):
            if k < PER_ROUND - picked_synthetic:
                item = real_left.pop(int(rng.integers(0, len(real_left))) if r else 0)
                labeled.append({"id": f"rt-train-{item}", "text": f"real sentence {item}", "source": "real",
                                "label": item % 2, "acquired_round": r, "annotator": "ground_truth"})
            else:
                labeled.append({"id": f"syn:r{r}:{k}", "text": f"generated {r}.{k}", "source": "synthetic",
                                "label": int(rng.integers(0, 2)), "acquired_round": r, "annotator": "model"})
        synthetic += picked_synthetic
        accuracy = _accuracy(seed_rng if r == 0 else rng, pct, offset, seed)
        row = {"round": r, "strategy": method, "seed": seed, "n_labeled": len(labeled),
               "n_real": len(labeled) - synthetic, "n_synthetic": synthetic, "acquired_pct": float(pct),
               "target_pct": float(pct), "accuracy": accuracy, "macro_f1": round(accuracy - 0.01, 4)}
        if generative and r >= 1:
            row.update(n_synthetic_selected=picked_synthetic, reward_mean=round(float(rng.uniform(0.05, 0.3)), 4),
                       dropped_fraction=round(float(rng.uniform(0.1, 0.4)), 4),
                       distinct_2=round(float(rng.uniform(0.9, 0.97)), 4))
            if method == "signal":
                row.update(kl_new_base=round(float(rng.uniform(0.0, 0.5)), 4),
                           heldout_gain_pct=round(float(rng.normal(5, 15)), 2))
        rows.append(row)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "labeled.jsonl").write_text("".join(json.dumps(row) + "\n" for row in labeled))


def write_fake_grid(root: Path) -> Path:
    """Every run of :data:`GRID` as ``root/<method>-seed<k>/``; returns ``root``."""
    for method, (seeds, stops, offset) in GRID.items():
        for seed, stop in zip(seeds, stops):
            write_run(root / f"{method}-seed{seed}", method, seed, stop, offset)
    return root


if __name__ == "__main__":  # python tests/report_grid.py DIR: write the grid's run folders into DIR
    import sys

    write_fake_grid(Path(sys.argv[1]))
