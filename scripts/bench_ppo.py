#!/usr/bin/env python
"""Benchmark: our PPO update vs trl.GRPOTrainer replaying the same stored rollouts.

Same model, same 64 stored rollouts (16 prompts x 4 completions), same LoRA, same number of
optimiser steps (64 rollouts x epochs / global batch). Each trainer runs in its own
process so peak memory is measured separately (GPU: torch.cuda.max_memory_allocated; CPU:
peak resident set size). Throughput = sequence tokens trained (prompt + completion, times
epochs) per second of the update itself (model loading excluded for both).

    python scripts/bench_ppo.py                      # SmolLM2-135M, CPU, float32
    python scripts/bench_ppo.py --model Qwen/Qwen2.5-1.5B-Instruct --dtype bfloat16   # GPU
    python scripts/bench_ppo.py --model ... --qlora  # QLoRA (4-bit base, GPU)

Last line: ``ppo: ours_tok_s=<x> trl_grpo_tok_s=<y> ratio=<x/y> ours_peak_mb=<m> trl_peak_mb=<n>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

SENTENCES = [
    "A warm, funny film that never forgets its characters.",
    "The plot drags and the jokes fall flat.",
    "An ambitious story told with real confidence and style.",
    "I checked my watch three times before the halfway mark.",
    "Gorgeous photography cannot save a script this thin.",
    "A small, honest movie about growing up in a big city.",
    "The cast is game but the material is stale.",
    "Sharp writing and a terrific lead performance.",
]


def make_rollouts(tokenizer, n: int, seed: int) -> list:
    from signal_al.trainers.rollouts import Rollout

    rng = random.Random(seed)
    rollouts = []
    for i in range(n):
        shots = " ".join(rng.sample(SENTENCES, 3))
        prompt = f"Examples: {shots}\nWrite a new movie review sentence #{i // 4}:"
        text = " " + " ".join(rng.sample(SENTENCES, rng.randint(1, 3)))
        rollouts.append(Rollout(
            prompt=prompt, prompt_token_ids=tokenizer(prompt)["input_ids"], completion=text,
            completion_token_ids=tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
            reward=rng.gauss(0.0, 1.0), line=i + 1))
    return rollouts


def peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer

    from signal_al.assets import resolve_model
    from signal_al.trainers.grpo_config import GRPOOptions
    from signal_al.trainers.ppo_config import PPOConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    rollouts = make_rollouts(tokenizer, args.n, args.seed)
    tokens = sum(len(r.prompt_token_ids) + len(r.completion_token_ids) for r in rollouts) * args.epochs
    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps_per_epoch = args.n // args.batch
    config = PPOConfig(learning_rate=1e-5, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                       num_mini_batches=steps_per_epoch, num_ppo_epochs=args.epochs, kl_coef=0.05, lora_r=16,
                       lora_alpha=32, dtype=args.dtype, load_in_4bit=args.qlora, seed=args.seed,
                       lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clock: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.worker == "ours":
            from signal_al.trainers.ppo_trainer import PPOTrainer

            trainer = PPOTrainer(model, config)
            clock["cpu0"] = time.process_time()
            metrics = trainer.train(rollouts)
            clock["cpu1"] = time.process_time()
            seconds, steps = metrics["update_seconds"], metrics["optimizer_steps"]
        else:
            from transformers import TrainerCallback

            from signal_al.trainers.grpo_trainer import train_generator_grpo

            class CpuClock(TrainerCallback):
                def on_train_begin(self, *a, **k):
                    clock["cpu0"] = time.process_time()

                def on_train_end(self, *a, **k):
                    clock["cpu1"] = time.process_time()

            metrics = train_generator_grpo(model, Path(tmp) / "adapter", config,
                                           GRPOOptions(num_generations=4, loss_type="grpo"), rl_data=rollouts,
                                           callbacks=[CpuClock()])
            seconds, steps = metrics["train_runtime"], metrics["optimizer_steps"]
    cpu_seconds = clock["cpu1"] - clock["cpu0"]
    used = cpu_seconds if args.clock == "cpu" else seconds
    return {"worker": args.worker, "tok_s": tokens / used, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "steps": steps, "peak_mb": peak_mb(device), "device": device, "tokens": tokens}


def run_worker(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--model", args.model, "--n", str(args.n),
               "--epochs", str(args.epochs), "--batch", str(args.batch), "--dtype", args.dtype,
               "--seed", str(args.seed), "--threads", str(args.threads), "--clock", args.clock] + (["--qlora"] if args.qlora else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"{name} worker failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Asset name, folder or hub name.")
    parser.add_argument("--n", type=int, default=64, help="Stored rollouts.")
    parser.add_argument("--epochs", type=int, default=2, help="PPO epochs = GRPO num_iterations.")
    parser.add_argument("--batch", type=int, default=8, help="Rollouts per optimiser step (both trainers).")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--qlora", action="store_true", help="4-bit base (GPU).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default).")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="Throughput per wall second, or per CPU second of the process (fairer on a shared "
                        "CPU machine; use with --threads 1).")
    parser.add_argument("--worker", choices=("ours", "trl"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    start = time.perf_counter()
    ours = run_worker("ours", args)
    trl = run_worker("trl", args)
    print(f"model {args.model} on {ours['device']}, {args.n} rollouts, {ours['tokens']} tokens trained; "
          f"ours {ours['steps']} steps in {ours['seconds']:.1f} s ({ours['cpu_seconds']:.1f} CPU s), trl GRPO "
          f"{trl['steps']} steps in {trl['seconds']:.1f} s ({trl['cpu_seconds']:.1f} CPU s); tok/s per "
          f"{args.clock} second; wall {time.perf_counter() - start:.0f} s")
    print(f"ppo: ours_tok_s={ours['tok_s']:.1f} trl_grpo_tok_s={trl['tok_s']:.1f} "
          f"ratio={ours['tok_s'] / trl['tok_s']:.2f} ours_peak_mb={ours['peak_mb']:.0f} trl_peak_mb={trl['peak_mb']:.0f}")


if __name__ == "__main__":
    main()
