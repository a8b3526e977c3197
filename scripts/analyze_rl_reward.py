"""Why does (or doesn't) RL raise the SIGnAL reward? Four measurements on a bench run's own samples.

Reads ``OUT/samples.jsonl`` and ``OUT/config.json`` of ``scripts/bench_rl.py`` runs (the training
samples of every iteration and the held-out samples) and rebuilds the run's fixed classifier to
rescore the texts:

1. **What text features explain** (out of sample): the R² of the reward from simple surface features
   (length, punctuation, digits, capitals, repetition, meta-commentary words), grouped 5-fold
   cross-validation by prompt; and from the length alone. A reward that features explain well is
   one a policy can chase without writing better examples.
2. **Best-of-group headroom**: within each prompt's group of samples, max - mean reward. The update
   can at most learn to write each group's best sample: if that headroom is small next to the
   noise, no amount of RL moves the mean much.
3. **Gate against in-range variance**: the law of total variance of the shaped reward splits it into
   the part from being gated or not (a cliff at ``gated_penalty``) and the part within the real-text
   range, where the score says something about informativeness.
4. **Other gates on the same samples**: the share of texts gated and the share of each group's best
   sample that is gated, under the two-sided gate (``typical``), a one-sided gate (``quantile``:
   only far text), none, and a soft factor (``exp(-z²/2)`` of the distance's z beyond the range).

    python scripts/analyze_rl_reward.py results/rl-bench/signal-s0 results/rl-bench/signal-s1 ...

Last line: ``why: r2_features=.. r2_length=.. headroom_rel=.. gate_var_share=.. gated_share=..
gated_best_share=..`` (means over the runs), and every figure per run in ``ANALYSIS.json`` next to
the first run unless ``--out`` names a file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

META = re.compile(r"\b(example|examples|sentence|sentences|review|reviews|prompt|here is|here's|note)\b", re.I)


def features(text: str) -> list[float]:
    """Surface features of one text (no meaning)."""
    words = text.split()
    n = max(len(words), 1)
    return [len(words), len(text), sum(len(w) for w in words) / n, text.count(","), text.count("."),
            text.count("!") + text.count("?"), sum(c.isdigit() for c in text), sum(c.isupper() for c in text) / max(
                len(text), 1), len(set(w.lower() for w in words)) / n, float(bool(META.search(text))),
            float(text[:1] in "\"'"), text.count("\n")]


def cv_r2(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> float | None:
    """Out-of-sample R² of a gradient-boosted model, 5-fold grouped by prompt (None: under 5 prompts)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import GroupKFold

    if np.unique(groups).size < 5:
        return None

    predictions = np.zeros_like(y)
    for train, test in GroupKFold(n_splits=5).split(x, y, groups):
        model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed)
        predictions[test] = model.fit(x[train], y[train]).predict(x[test])
    return float(1.0 - np.sum((y - predictions) ** 2) / np.sum((y - y.mean()) ** 2))


def read_samples(run: Path) -> list[dict]:
    """The run's samples.jsonl rows (or samples.jsonl.gz: how results/rl-bench/runs/ commits them)."""
    import gzip

    plain, packed = run / "samples.jsonl", run / "samples.jsonl.gz"
    text = plain.read_text() if plain.is_file() else gzip.decompress(packed.read_bytes()).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def analyze(run: Path) -> dict:
    from signal_al.experiments.rl_bench import RLBench, RLBenchConfig
    from signal_al.rewards.relevance import distance_bounds

    config = RLBenchConfig(**json.loads((run / "config.json").read_text()))
    rows = read_samples(run)
    train = [r for r in rows if r["phase"].startswith("train-") and r["drop_reason"] is None and r["reward"] is not None]
    texts = [r["text"] for r in train]
    groups = np.array([f"{r['phase']}:{r['group']}" for r in train])
    shaped = np.array([r["reward"] for r in train])

    with tempfile.TemporaryDirectory() as scratch:  # nothing is written into the (committed) run folder
        bench = RLBench(config, Path(scratch), log=lambda _: None)
        bench._setup()  # the run's classifier and labeled set, rebuilt from its seed
    scores = bench.plain.score(texts, return_neighbors=True)
    raw = np.asarray(scores.scores, dtype=np.float64)
    distance = scores.distances.mean(axis=1)
    reference = bench.ref_distances
    x = np.array([features(t) for t in texts])
    result: dict = {"run": str(run), "reward": config.reward, "samples": len(train)}
    if config.reward in ("signal", "shuffled"):
        target = raw  # the unshaped score: what the features could explain about informativeness
        result["r2_features"] = cv_r2(x, target, groups)
        result["r2_length"] = cv_r2(x[:, :1], target, groups)
        varies = x[:, 0].std() > 0 and target.std() > 0  # a correlation needs both to vary
        result["corr_length"] = float(np.corrcoef(x[:, 0], target)[0, 1]) if varies else None

    def best_of_group(values: np.ndarray) -> tuple[float, float]:
        gaps, means = [], []
        for g in np.unique(groups):
            v = values[groups == g]
            if v.size >= 2:
                gaps.append(v.max() - v.mean())
                means.append(v.mean())
        return (float(np.mean(gaps)), float(np.mean(means))) if gaps else (float("nan"), float("nan"))

    headroom, mean = best_of_group(shaped)
    result.update(headroom=headroom, reward_mean=mean, headroom_rel=headroom / abs(mean) if mean else None)
    if len(train) == 0:
        return result
    gated = shaped == config.gated_penalty
    p = float(gated.mean())
    total = float(shaped.var())
    between = p * (1 - p) * (float(shaped[~gated].mean()) - config.gated_penalty) ** 2 if 0 < p < 1 else 0.0
    result.update(gated_share=p, gate_var_share=between / total if total else None,
                  in_range_var_share=(1 - p) * float(shaped[~gated].var()) / total if total else None)
    low, high = distance_bounds(reference, config.relevance_quantile, two_sided=True)
    _, high1 = distance_bounds(reference, config.relevance_quantile)
    spread = float(np.std(reference))
    beyond = np.maximum(low - distance, 0) + np.maximum(distance - high, 0)
    variants = {"typical": ((distance < low) | (distance > high)).astype(float),
                "quantile": (distance > high1).astype(float), "none": np.zeros_like(distance),
                "soft": 1.0 - np.exp(-0.5 * (beyond / spread) ** 2)}
    for name, gate in variants.items():  # gate: 1 = fully gated (soft: the weight taken away)
        value = raw * (1 - gate) + config.gated_penalty * (gate > 0.5)
        best_gated = []
        for g in np.unique(groups):
            rows_g = np.flatnonzero(groups == g)
            if rows_g.size >= 2:
                best_gated.append(gate[rows_g[np.argmax(raw[rows_g])]] > 0.5)  # the raw score's favourite
        result[f"{name}_gated_share"] = float((gate > 0.5).mean())
        result[f"{name}_best_gated_share"] = float(np.mean(best_gated)) if best_gated else None
        result[f"{name}_headroom_rel"] = (lambda h, m: h / abs(m) if m else None)(*best_of_group(value))
    result["gated_best_share"] = result["typical_best_gated_share"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="scripts/bench_rl.py --out folders.")
    parser.add_argument("--out", type=Path, help="Where to write the JSON (default: ANALYSIS.json beside the first run).")
    args = parser.parse_args(argv)
    for run in args.runs:
        has_samples = (run / "samples.jsonl").is_file() or (run / "samples.jsonl.gz").is_file()
        if not has_samples or not (run / "config.json").is_file():
            parser.error(f"{run}: not a bench_rl.py --out folder (no samples.jsonl[.gz] / config.json)")
    results = [analyze(run) for run in args.runs]
    out = args.out or args.runs[0].parent / "ANALYSIS.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}))

    def mean(key: str) -> str:
        values = [r[key] for r in results if r.get(key) is not None and not math.isnan(r[key])]
        return f"{np.mean(values):.3f}" if values else "nan"

    print(f"why: r2_features={mean('r2_features')} r2_length={mean('r2_length')} headroom_rel={mean('headroom_rel')} "
          f"gate_var_share={mean('gate_var_share')} gated_share={mean('gated_share')} "
          f"gated_best_share={mean('gated_best_share')} (written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
