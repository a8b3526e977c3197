"""Does the demo's classifier learn? Random labeling's test accuracy at each labeled size, and its cost.

The demo (configs/demo.yaml) retrains a fresh classifier every round on the labeled set; its
budget must fit a 2-core machine, and random with the whole pool labeled must beat a coin by a
wide margin, or no comparison in the demo means anything. For each seed this script draws a
random order of the seed's real pool (what ``random`` selects, in distribution), trains
``fit_and_evaluate`` on its first n items for each labeled size n of the config's acquisition
grid up to the whole pool (seed set, then a round's budget per round), with the loop's training
seeds, and
prints the test accuracy and the seconds of each training (evaluation timed apart), with the CPU
seconds of the process and the 1-minute load average (on a shared machine wall time lies).

    HF_HUB_OFFLINE=1 nice -n 5 python scripts/measure_demo_classifier.py --seeds 0 1 \\
        --set data.pool_size=200 --set classifier.epochs=5

``--set`` overrides apply to configs/demo.yaml (``--config`` to measure another config). On a
busy machine, sweep accuracies with ``OMP_NUM_THREADS=1`` (two threads that keep waiting for each
other cost far more than one) and time the chosen setting with the demo's two threads.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    from signal_al.classifier.fit_eval import evaluate
    from signal_al.cli.options import add_config_args, config_from_args
    from signal_al.engine.budgets import round_targets
    from signal_al.engine.context import RunContext

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_config_args(parser)
    parser.set_defaults(config="configs/demo.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    config = config_from_args(args)
    for seed in args.seeds:
        config.seed = seed
        context = RunContext(config, progress=False)
        pool = context.pool
        order = np.random.default_rng([seed, 0]).permutation(len(pool))
        al = config.active_learning
        for r, n in enumerate(round_targets(len(pool), al.round_fraction, len(pool), al.seed_size)):
            start, cpu_start = time.perf_counter(), time.process_time()
            fit = context.fit_classifier(pool.subset(np.sort(order[:n])), seed=seed * 1000 + r)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            eval_start = time.perf_counter()
            evaluate(fit.model, context.tokenizer, context.data.test, context.label_names, config.classifier)
            eval_seconds = time.perf_counter() - eval_start
            print(json.dumps({"overrides": args.overrides, "seed": seed, "n_labeled": n,
                              "accuracy": round(fit.metrics["accuracy"], 4), "steps": fit.stats.steps,
                              "train_s": round(fit.stats.seconds, 1), "eval_s": round(eval_seconds, 1),
                              "fit_eval_s": round(total, 1), "fit_eval_cpu_s": round(cpu, 1),
                              "load_1min": os.getloadavg()[0], "n_test": len(context.data.test)}), flush=True)


if __name__ == "__main__":
    main()
