#!/usr/bin/env python
"""Benchmark: our update (shared prompt forward, and without it) vs trl.GRPOTrainer on the same rollouts.

Same model, same stored rollouts (``--prompts`` groups x ``--samples`` completions, prompts of
about ``--prompt-tokens`` tokens, completions of about ``--completion-tokens``), same LoRA, same
GRPO objective (``ppo.advantage: grpo``, beta > 0, ``num_ppo_epochs`` = ``num_iterations``), same
number of optimiser steps. Each trainer runs in its own process so peak memory is measured
separately (GPU: torch.cuda.max_memory_allocated; CPU: peak resident set size, which includes
the loaded model). Throughput = sequence tokens trained (prompt + completion, times epochs) per
second of the update itself (model loading excluded for all three).

    python scripts/bench_ppo.py                      # SmolLM2-135M, 16 prompts x 4 samples
    python scripts/bench_ppo.py --tiny               # a 2-layer random model with SmolLM2's tokenizer (smoke run)
    python scripts/bench_ppo.py --model Qwen/Qwen2.5-1.5B-Instruct --dtype bfloat16   # GPU
    python scripts/bench_ppo.py --model ... --qlora  # QLoRA (4-bit base, GPU)

Last line: ``ppo: shared_tok_s=.. unshared_tok_s=.. trl_grpo_tok_s=.. shared_vs_trl=.. unshared_vs_trl=..
shared_vs_unshared=.. shared_peak_mb=.. unshared_peak_mb=.. trl_peak_mb=..`` (wall-clock tokens/s).

``--vs-lora-layers N`` instead times our update twice, side by side: LoRA on every layer against
``ppo.lora_layers: N`` (LoRA on the top N layers, no backward pass below them), with the loop's
defaults (``--advantage rloo --epochs 1 --batch 32``: 16 x 4 rollouts, 2 optimiser steps). Last
line: ``ppo-layers: all_tok_s=.. topN_tok_s=.. speedup=.. all_peak_mb=.. topN_peak_mb=..``.
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
WORKERS = ("shared", "unshared", "trl")


def _text_of_about(tokenizer, rng: random.Random, tokens: int, head: str = "") -> list[int]:
    text = head
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens:
        text += " " + rng.choice(SENTENCES)
    return tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]


def make_rollouts(tokenizer, args: argparse.Namespace) -> list:
    """``args.prompts`` few-shot prompts, each with ``args.samples`` completions (a GRPO group)."""
    from signal_al.trainers.rollouts import Rollout

    rng = random.Random(args.seed)
    rollouts = []
    for g in range(args.prompts):
        prompt_ids = _text_of_about(tokenizer, rng, args.prompt_tokens - 8, "Examples:")
        prompt_ids += tokenizer(f"\nWrite review #{g}:", add_special_tokens=False)["input_ids"]
        for _ in range(args.samples):
            length = max(2, args.completion_tokens + rng.randint(-8, 8))
            completion = _text_of_about(tokenizer, rng, length - 1) + [tokenizer.eos_token_id]
            rollouts.append(Rollout(
                prompt=tokenizer.decode(prompt_ids), prompt_token_ids=prompt_ids,
                completion=tokenizer.decode(completion[:-1]), completion_token_ids=completion,
                reward=rng.gauss(0.0, 1.0), group=g, line=len(rollouts) + 1))
    return rollouts


def tiny_model(folder: Path, tokenizer_source: str) -> str:
    """A 2-layer random Qwen2 with the real tokenizer (so TRL can decode), saved to ``folder``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer

    from signal_al.assets.registry import resolve_model
    from signal_al.trainers.grpo_config import GRPOOptions
    from signal_al.trainers.ppo_config import PPOConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    rollouts = make_rollouts(tokenizer, args)
    tokens = sum(len(r.prompt_token_ids) + len(r.completion_token_ids) for r in rollouts) * args.epochs
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = len(rollouts)
    config = PPOConfig(learning_rate=1e-5, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                       num_mini_batches=max(1, n // args.batch), num_ppo_epochs=args.epochs, kl_coef=0.05, lora_r=16,
                       lora_alpha=32, dtype=args.dtype, load_in_4bit=args.qlora, seed=args.seed,
                       advantage=args.advantage, share_prompt_forward=args.worker == "shared",
                       lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], lora_layers=args.lora_layers)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clock: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.worker in ("shared", "unshared"):
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

            options = GRPOOptions(num_generations=args.samples, loss_type="grpo",
                                  max_completion_length=args.completion_tokens + 16)
            metrics = train_generator_grpo(model, Path(tmp) / "adapter", config, options, rl_data=rollouts,
                                           callbacks=[CpuClock()])
            seconds, steps = metrics["train_runtime"], metrics["optimizer_steps"]
    cpu_seconds = clock["cpu1"] - clock["cpu0"]
    return {"worker": args.worker, "tok_s": tokens / seconds, "cpu_tok_s": tokens / cpu_seconds, "seconds": seconds,
            "cpu_seconds": cpu_seconds, "steps": steps, "peak_mb": peak_mb(device), "device": device,
            "tokens": tokens}


def run_worker(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--model", args.model, "--prompts", str(args.prompts),
               "--samples", str(args.samples), "--prompt-tokens", str(args.prompt_tokens),
               "--completion-tokens", str(args.completion_tokens), "--epochs", str(args.epochs),
               "--batch", str(args.batch), "--dtype", args.dtype, "--seed", str(args.seed),
               "--threads", str(args.threads), "--advantage", args.advantage] + (["--qlora"] if args.qlora else []) \
        + (["--lora-layers", str(args.lora_layers)] if args.lora_layers else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"{name} worker failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


TRL_DEFAULTS = {"advantage": "grpo", "epochs": 2, "batch": 8}
LOOP_DEFAULTS = {"advantage": "rloo", "epochs": 1, "batch": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Asset name, folder or hub name.")
    parser.add_argument("--tiny", action="store_true", help="A 2-layer random model with --model's tokenizer.")
    parser.add_argument("--prompts", type=int, default=16, help="Distinct prompts (groups).")
    parser.add_argument("--samples", type=int, default=4, help="Completions per prompt (GRPO num_generations).")
    parser.add_argument("--prompt-tokens", type=int, default=150, help="Prompt length in tokens.")
    parser.add_argument("--completion-tokens", type=int, default=48, help="Mean completion length (+-8) in tokens.")
    parser.add_argument("--epochs", type=int, default=None,
                        help="PPO epochs = GRPO num_iterations (default 2; with --vs-lora-layers 1, the loop's).")
    parser.add_argument("--batch", type=int, default=None,
                        help="Rollouts per optimiser step, all trainers (default 8; with --vs-lora-layers 32, the loop's).")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--qlora", action="store_true", help="4-bit base (GPU).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default).")
    parser.add_argument("--advantage", default=None, choices=("gae", "rloo", "grpo"),
                        help="ppo.advantage (default grpo: the objective TRL's GRPOTrainer runs too; with "
                        "--vs-lora-layers rloo, the loop's).")
    parser.add_argument("--lora-layers", type=int, default=None, help="ppo.lora_layers of our update.")
    parser.add_argument("--vs-lora-layers", type=int, default=None, metavar="N",
                        help="Time our update with LoRA on every layer against the top N layers only.")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # the comparison with TRL runs GRPO's settings; the layer comparison runs the loop's (configs/exp_offline.yaml)
    defaults = LOOP_DEFAULTS if args.vs_lora_layers else TRL_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    start = time.perf_counter()
    if args.vs_lora_layers:
        import copy

        with tempfile.TemporaryDirectory() as tmp:
            if args.tiny:
                from signal_al.assets.registry import resolve_model

                args.model = tiny_model(Path(tmp) / "tiny", resolve_model(args.model))
            top = copy.copy(args)
            top.lora_layers = args.vs_lora_layers
            every, cheap = run_worker("shared", args), run_worker("shared", top)
        n = args.vs_lora_layers
        print(f"model {args.model} on {every['device']}, {args.prompts} prompts x {args.samples} samples, "
              f"{args.advantage}, {args.epochs} epoch(s), {every['steps']} steps, {every['tokens']} tokens; every layer "
              f"{every['seconds']:.1f} s, top {n} {cheap['seconds']:.1f} s; wall {time.perf_counter() - start:.0f} s")
        print(f"ppo-layers: all_tok_s={every['tok_s']:.1f} top{n}_tok_s={cheap['tok_s']:.1f} "
              f"speedup={cheap['tok_s'] / every['tok_s']:.2f} all_peak_mb={every['peak_mb']:.0f} "
              f"top{n}_peak_mb={cheap['peak_mb']:.0f}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            from signal_al.assets.registry import resolve_model

            args.model = tiny_model(Path(tmp) / "tiny", resolve_model(args.model))
        runs = {name: run_worker(name, args) for name in WORKERS}
    shared, unshared, trl = (runs[name] for name in WORKERS)
    print(f"model {args.model} on {shared['device']}, {args.prompts} prompts x {args.samples} samples, "
          f"{shared['tokens']} tokens trained; " + "; ".join(
              f"{name} {r['steps']} steps in {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} CPU s)"
              for name, r in runs.items()) + f"; wall {time.perf_counter() - start:.0f} s")
    print(f"per CPU second: shared_tok_s={shared['cpu_tok_s']:.1f} unshared_tok_s={unshared['cpu_tok_s']:.1f} "
          f"trl_grpo_tok_s={trl['cpu_tok_s']:.1f} shared_vs_trl={shared['cpu_tok_s'] / trl['cpu_tok_s']:.2f}")
    print(f"ppo: shared_tok_s={shared['tok_s']:.1f} unshared_tok_s={unshared['tok_s']:.1f} "
          f"trl_grpo_tok_s={trl['tok_s']:.1f} shared_vs_trl={shared['tok_s'] / trl['tok_s']:.2f} "
          f"unshared_vs_trl={unshared['tok_s'] / trl['tok_s']:.2f} "
          f"shared_vs_unshared={shared['tok_s'] / unshared['tok_s']:.2f} shared_peak_mb={shared['peak_mb']:.0f} "
          f"unshared_peak_mb={unshared['peak_mb']:.0f} trl_peak_mb={trl['peak_mb']:.0f}")


if __name__ == "__main__":
    main()
