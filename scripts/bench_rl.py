"""Does RL raise a reward on prompts it never trained on? Controls and the SIGnAL reward, through vLLM.

A fixed classifier and labeled set (a seeded labeled set of the task, the classifier trained
once); SmolLM2-135M served by a vLLM CPU server (the loop's path) starts from the base model,
and one PPOTrainer (one AdamW for the whole bench) runs one update per iteration on
``--prompts`` x ``--samples`` candidates of training prompts, the new adapter hot-loaded for the
next. ``--reward`` picks what the update is trained on:

  signal     the SIGnAL score, relevance-gated (a gated text costs --gated-penalty)
  classprob  the model annotator's probability of --target-class (positive control: must rise)
  length     -words/10 (a trivially learnable positive control)
  shuffled   the SIGnAL rewards permuted within each iteration (null control: must not move)

After the last iteration (and every ``--eval-every`` iterations) the base model and the adapter
answer the same ``--heldout`` held-out samples (``--heldout-per-prompt`` per prompt, same seeds),
rewarded the way the update was (shuffled: by the real SIGnAL reward). The gain is paired by
sample, its z clustered by prompt, its 95 % interval t over prompts; beside it the mean words on
both sides, the gain within length bins, KL(adapter || base) on the adapter's own samples (k3,
non-negative), distinct-2 and the off-distribution share. ``--out`` keeps config.json,
metrics.jsonl (one row per iteration and per evaluation), samples.jsonl and summary.json.

The last line is (one line)

    rl: reward=.. backend=.. iterations=N reward_base=.. reward_trained=.. gain=.. gain_pct=..
        gain_lo=.. gain_hi=.. paired_z=.. paired_n=.. kl=.. words_base=.. words_trained=..
        length_matched_gain=.. distinct2_base=.. distinct2_trained=.. offdist_base=..
        offdist_trained=.. served_mae=.. wall_s=..

(gain_lo/gain_hi: the 95 % interval of gain_pct; served_mae: the largest per-iteration mean
|log p_served - log p_trainer| per token.)

    python scripts/bench_rl.py --reward classprob --seed 0      # the positive control
    python scripts/bench_rl.py --reward shuffled --seed 0       # the null control
    python scripts/bench_rl.py --reward signal --iterations 40 --eval-every 10 --out results/rl-bench/signal-s0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from signal_al.experiments.controls import REWARD_KINDS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reward", choices=REWARD_KINDS, default="signal", help="What the update is trained on.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the labeled set, prompts, sampling and training.")
    p.add_argument("--task", default="rt-movies", help="Offline task (rt-movies or vader-sources).")
    p.add_argument("--labeled", type=int, default=40, help="Size of the fixed labeled set.")
    p.add_argument("--iterations", type=int, default=8, help="generate -> reward -> update iterations (8: the "
                   "controls of results/rl-bench/, 10 min a seed on 2 quiet cores).")
    p.add_argument("--prompts", type=int, default=16, help="Training prompts per iteration.")
    p.add_argument("--samples", type=int, default=4, help="Samples per training prompt (the group size).")
    p.add_argument("--heldout", type=int, default=400, help="Held-out samples per generator (>= 400 for z >= 3 at "
                   "a true +25 %% on the SIGnAL reward).")
    p.add_argument("--heldout-per-prompt", type=int, default=4, help="Held-out samples per prompt (one cluster).")
    p.add_argument("--eval-every", type=int, default=0, help="Also evaluate every N iterations (0: only at the end).")
    p.add_argument("--target-class", default="positive", help="classprob: the label whose probability is the reward.")
    p.add_argument("--advantage", choices=["gae", "rloo", "grpo"], default="rloo", help="ppo.advantage.")
    p.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate (1e-3 gained more than 5e-4 and 2e-3 "
                   "on classprob seed 0: results/rl-bench/).")
    p.add_argument("--kl-coef", type=float, default=0.1, help="beta of the KL penalty to the base model.")
    p.add_argument("--epochs", type=int, default=1, help="PPO epochs per iteration.")
    p.add_argument("--minibatches", type=int, default=2, help="Minibatches (optimizer steps) per epoch.")
    p.add_argument("--lora-layers", type=int, default=None, help="ppo.lora_layers: LoRA on the top N layers only.")
    p.add_argument("--reset-optimizer", action="store_true", help="A fresh AdamW every update (the old behaviour).")
    p.add_argument("--no-importance-sampling", action="store_true", help="ppo.importance_sampling_cap: null.")
    p.add_argument("--max-new-tokens", type=int, default=40, help="Generation length limit.")
    p.add_argument("--relevance", default="typical", help="reward.relevance of the SIGnAL reward (none: the paper's).")
    p.add_argument("--relevance-quantile", type=float, default=0.9, help="reward.relevance_quantile.")
    p.add_argument("--gated-penalty", type=float, default=-0.3, help="Reward of a text the relevance gate scored 0.")
    p.add_argument("--offdist-quantile", type=float, default=0.9, help="Quantile of the off-distribution check.")
    p.add_argument("--backend", choices=["vllm-server", "transformers"], default="vllm-server",
                   help="Generation backend (vllm-server: a managed CPU server from the server environment).")
    p.add_argument("--server-url", default="http://127.0.0.1:8000",
                   help="vllm-server: where the managed server listens (one port per concurrent bench).")
    p.add_argument("--out", type=Path, default=None, help="Keep the raw record here (default: a temp dir).")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import time

    from signal_al.experiments.rl_bench import RLBench, RLBenchConfig

    args = parse_args(argv)
    config = RLBenchConfig(
        reward=args.reward, seed=args.seed, task=args.task, labeled=args.labeled, iterations=args.iterations,
        prompts=args.prompts, samples=args.samples, heldout=args.heldout, heldout_per_prompt=args.heldout_per_prompt,
        eval_every=args.eval_every, target_class=args.target_class, backend=args.backend, server_url=args.server_url,
        max_new_tokens=args.max_new_tokens, learning_rate=args.lr, kl_coef=args.kl_coef, advantage=args.advantage,
        epochs=args.epochs, minibatches=args.minibatches, lora_layers=args.lora_layers,
        reset_optimizer=args.reset_optimizer, importance_sampling_cap=None if args.no_importance_sampling else 3.0,
        relevance=args.relevance, relevance_quantile=args.relevance_quantile, gated_penalty=args.gated_penalty,
        offdist_quantile=args.offdist_quantile)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-rl-"))
    start = time.perf_counter()
    bench = RLBench(config, out, log=lambda msg: print(msg, flush=True))
    row = bench.run()
    print(f"raw record: {out}")
    print(bench.summary_line(row, wall_s=time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
