"""Does RL raise the SIGnAL reward on prompts it never trained on?

Fixed classifier and labeled set (rt-movies, a seeded labeled set, the classifier trained
once). Training prompts and held-out prompts draw their in-context examples from two
disjoint halves of the train split. SmolLM2-135M starts from the base model; each
iteration generates ``--prompts`` x ``--samples`` candidates on training prompts, scores
them, and runs one policy update (``ppo.advantage``) that continues the previous adapter.
Then the base model and the final adapter answer the same ``--heldout`` held-out prompts
with the same seeds, scored by the reward they were trained on (``--relevance``); the line
before the last gives the paper's score too. The last line is

    rl: reward_base=… reward_trained=… gain_pct=… paired_z=… kl=… distinct2_base=…
        distinct2_trained=… offdist_base=… offdist_trained=… wall_s=…

(one line). ``offdist`` is the share of kept samples whose mean k-NN distance to the labeled
set lies outside the central range of the real texts' (two-sided, ``--offdist-quantile``).
Dropped samples (cleaning) are left out of training by default (``--invalid-penalty``) and count
as missing in the held-out comparison (paired over prompts where both wrote valid text); kept
samples the relevance gate scored 0 get ``--gated-penalty``.

    python scripts/bench_rl.py --seed 0 --backend vllm-server     # the measured setting (results/rl-bench/)
    python scripts/bench_rl.py --seed 1 --kl-coef 0.02 --invalid-penalty min --gated-penalty 0   # the first one
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="Seed of the labeled set, prompts, sampling and training.")
    p.add_argument("--task", default="rt-movies", help="Offline task (rt-movies or vader-sources).")
    p.add_argument("--labeled", type=int, default=40, help="Size of the fixed labeled set.")
    p.add_argument("--iterations", type=int, default=5, help="generate -> score -> update iterations.")
    p.add_argument("--prompts", type=int, default=16, help="Training prompts per iteration.")
    p.add_argument("--samples", type=int, default=4, help="Samples per training prompt (the group size).")
    p.add_argument("--heldout", type=int, default=128, help="Held-out prompts (one sample each) per generator.")
    p.add_argument("--advantage", choices=["gae", "rloo", "grpo"], default="rloo", help="ppo.advantage.")
    p.add_argument("--lr", type=float, default=5e-4, help="LoRA learning rate.")
    p.add_argument("--kl-coef", type=float, default=0.1, help="beta of the KL penalty to the base model (> 0).")
    p.add_argument("--epochs", type=int, default=2, help="PPO epochs per iteration.")
    p.add_argument("--minibatches", type=int, default=2, help="Minibatches (optimizer steps) per epoch.")
    p.add_argument("--max-new-tokens", type=int, default=40, help="Generation length limit.")
    p.add_argument("--relevance", default="typical", help="reward.relevance of the training reward (none: the paper's).")
    p.add_argument("--relevance-quantile", type=float, default=0.9, help="reward.relevance_quantile.")
    p.add_argument("--invalid-penalty", type=_penalty, default="none",
                   help="Reward of a dropped candidate: a number, 'min' (the lowest kept reward of the iteration) or "
                   "'none' (dropped candidates left out of the update, like reward.invalid_penalty: null).")
    p.add_argument("--gated-penalty", type=float, default=-0.3,
                   help="Reward of a kept candidate the relevance gate scored 0 (reward.gated_penalty).")
    p.add_argument("--offdist-quantile", type=float, default=0.9, help="Quantile of the off-distribution check.")
    p.add_argument("--backend", choices=["transformers", "vllm-server"], default="transformers",
                   help="Generation backend (vllm-server starts a managed CPU server from .venv-vllm).")
    p.add_argument("--server-url", default="http://127.0.0.1:8000",
                   help="vllm-server: where the managed server listens (one port per concurrent bench).")
    p.add_argument("--out", type=Path, default=None,
                   help="Keep adapters, the server log and samples.jsonl (every sample with its reward) here "
                   "(default: a temp dir).")
    return p.parse_args(argv)


def _penalty(text: str) -> float | str:
    if text in ("min", "none"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'min' or 'none', got {text!r}") from None


def _append_samples(path: Path, phase: str, candidates, scores: np.ndarray) -> None:
    """Every sample with its reward (NaN: dropped by cleaning) and drop reason, for reading afterwards."""
    import json

    with path.open("a", encoding="utf-8") as f:
        for c, s in zip(candidates, scores):
            f.write(json.dumps({"phase": phase, "group": c.group, "text": c.text or c.raw_output,
                                "drop_reason": c.drop_reason, "reward": None if math.isnan(s) else float(s)}) + "\n")


def _split_prompt_pools(data, seed: int, labeled: int):
    """(labeled set, training-prompt pool, held-out-prompt pool, real reference texts): disjoint rows."""
    from signal_al.data.task import TextDataset

    rng = np.random.default_rng([seed, 17])
    order = rng.permutation(len(data.train))
    take = lambda rows: TextDataset(  # noqa: E731
        ids=[data.train.ids[i] for i in rows], texts=[data.train.texts[i] for i in rows],
        labels=data.train.labels[rows], text_pairs=None)
    lab, rest = order[:labeled], order[labeled:]
    half = min(400, len(rest) // 3)
    return take(lab), take(rest[:half]), take(rest[half:2 * half]), take(rest[2 * half:3 * half])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    from signal_al.assets import resolve_model
    from signal_al.data import load_task
    from signal_al.data.config import DataConfig
    from signal_al.fit_eval import fit_and_evaluate
    from signal_al.generation.config import GeneratorConfig
    from signal_al.generation.generator import create_generator
    from signal_al.heldout import lift_stats, score_kept
    from signal_al.metrics import distinct_n
    from signal_al.rewards import RewardConfig, offdist_flags
    from signal_al.rewards.scorer import SignalScorer
    from signal_al.rewards.shaping import RewardShaping, shape_rewards
    from signal_al.serving import managed_server
    from signal_al.trainers.classifier_config import ClassifierConfig
    from signal_al.trainers.classifier_trainer import load_tokenizer
    from signal_al.trainers.ppo_config import PPOConfig
    from signal_al.trainers.ppo_trainer import train_generator
    from signal_al.trainers.rollouts import Rollout

    data = load_task(DataConfig(task=args.task, max_test_size=500))
    labeled, train_pool, heldout_pool, reference = _split_prompt_pools(data, args.seed, args.labeled)
    recipe = ClassifierConfig(model="minilm-l6", learning_rate=1e-4, max_length=64, batch_size=16, epochs=3,
                              min_steps=50)
    source = resolve_model(recipe.model)
    tokenizer = load_tokenizer(source)
    fit = fit_and_evaluate(source, tokenizer, labeled, data.test, data.spec.label_names, recipe, seed=args.seed)
    print(f"classifier on {len(labeled)} labels: test accuracy {fit.metrics['accuracy']:.3f}", flush=True)
    reward = RewardConfig(relevance=args.relevance, relevance_quantile=args.relevance_quantile)
    scorer = SignalScorer(fit.model.eval(), tokenizer, labeled.texts, config=reward, reference_texts=reference.texts,
                          batch_size=128, max_length=recipe.max_length, device="cpu")
    # the held-out comparison: the paper's score (no relevance gate) and off-distribution flags
    plain = SignalScorer(fit.model.eval(), tokenizer, labeled.texts, config=RewardConfig(),
                         reference_texts=reference.texts, batch_size=128, max_length=recipe.max_length, device="cpu")
    gate = SignalScorer(fit.model.eval(), tokenizer, labeled.texts, config=RewardConfig(relevance="typical"),
                        reference_texts=reference.texts, batch_size=128, max_length=recipe.max_length, device="cpu")
    ref_distances = gate.reference_distances()

    gen_config = GeneratorConfig(model="smollm2-135m-instruct", backend=args.backend, dtype="auto",
                                 server_url=args.server_url,
                                 start_server=args.backend == "vllm-server", max_new_tokens=args.max_new_tokens,
                                 temperature=1.0, num_in_context=3, hf_batch_size=64)
    ppo = PPOConfig(learning_rate=args.lr, kl_coef=args.kl_coef, advantage=args.advantage,
                    num_ppo_epochs=args.epochs, num_mini_batches=args.minibatches,
                    per_device_train_batch_size=max(1, args.prompts * args.samples // args.minibatches),
                    temperature=1.0, lora_r=8)
    base_model = resolve_model(gen_config.model)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-rl-"))
    out.mkdir(parents=True, exist_ok=True)
    adapter: Path | None = None
    kl = float("nan")
    with managed_server(gen_config, log_file=out / "vllm-server.log", log=print):
        generator = create_generator(gen_config, data.spec, seed=args.seed, device="cpu", log=lambda _: None)
        for it in range(args.iterations):
            t0 = time.perf_counter()
            candidates = generator.generate(train_pool, args.prompts, samples_per_prompt=args.samples,
                                            seed=args.seed * 1000 + it, adapter=True if adapter else None)
            scores = score_kept(candidates, scorer)
            kept = ~np.isnan(scores)
            penalty = (float(np.nanmin(scores)) if kept.any() else 0.0) if args.invalid_penalty in ("min", "none") \
                else args.invalid_penalty
            shaping = RewardShaping(invalid_penalty=penalty,
                                    gated_penalty=args.gated_penalty if args.relevance != "none" else None)
            rewards = shape_rewards(np.where(kept, scores, 0.0), ~kept, shaping)
            rollouts = [Rollout(prompt_token_ids=list(c.prompt_token_ids), completion_token_ids=list(c.completion_token_ids),
                                reward=float(r), group=f"{it}:{c.group}")
                        for c, r, k in zip(candidates, rewards, kept)
                        if c.completion_token_ids and c.prompt_token_ids and (k or args.invalid_penalty != "none")]
            _append_samples(out / "samples.jsonl", f"train-{it}", candidates, scores)
            t1 = time.perf_counter()
            target = out / f"iter-{it:02d}"
            metrics = train_generator(base_model, rollouts, target, dataclasses.replace(ppo, seed=args.seed * 100 + it),
                                      adapter=adapter, cpu=True, overwrite=True)
            adapter = target
            generator.load_adapter(adapter, it + 1)
            kl = metrics["kl_final"]
            gated = int((kept & (np.nan_to_num(scores) == 0.0)).sum()) if args.relevance != "none" else 0
            print(f"iter {it}: kept {int(kept.sum())}/{len(candidates)} (gated {gated}), reward mean {np.nanmean(scores):.4f}, "
                  f"kl {kl:.4f}, generate+score {t1 - t0:.0f} s, update {time.perf_counter() - t1:.0f} s", flush=True)

        def sample(use_adapter: bool):
            return generator.generate(heldout_pool, args.heldout, samples_per_prompt=1, seed=10_000 + args.seed,
                                      adapter=True if use_adapter else None)

        base, trained = sample(False), sample(True)
        generator.backend.close()

    def offdist(candidates) -> float:
        texts = [c.text for c in candidates if c.kept]
        if not texts:
            return float("nan")
        distances = plain.score(texts, return_neighbors=True).distances.mean(axis=1)
        return float(offdist_flags(distances, ref_distances, quantile=args.offdist_quantile, two_sided=True).mean())

    fmt = lambda v, spec=".4f": "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)  # noqa: E731
    d2 = lambda cs: distinct_n([c.text for c in cs if c.kept], 2)  # noqa: E731
    rewarded = {"heldout-base": score_kept(base, scorer), "heldout-trained": score_kept(trained, scorer)}
    for name, rows in (("heldout-base", base), ("heldout-trained", trained)):
        _append_samples(out / "samples.jsonl", name, rows, rewarded[name])
    paper = lift_stats(score_kept(base, plain), score_kept(trained, plain))
    stats = lift_stats(rewarded["heldout-base"], rewarded["heldout-trained"])  # the reward it was trained on
    print(f"held-out: valid base {fmt(stats['heldout_valid_base'], '.2f')}, trained "
          f"{fmt(stats['heldout_valid_adapter'], '.2f')}, paired n {stats['heldout_paired_n']}; the paper's score "
          f"(no relevance gate): base {fmt(paper['heldout_reward_base'])}, trained {fmt(paper['heldout_reward_adapter'])}, "
          f"gain {fmt(paper['heldout_lift_pct'], '.1f')} %, paired z {fmt(paper['heldout_paired_z'], '.2f')}")
    print(f"rl: reward_base={fmt(stats['heldout_reward_base'])} reward_trained={fmt(stats['heldout_reward_adapter'])} "
          f"gain_pct={fmt(stats['heldout_lift_pct'], '.1f')} paired_z={fmt(stats['heldout_paired_z'], '.2f')} "
          f"kl={fmt(kl)} distinct2_base={fmt(d2(base), '.3f')} distinct2_trained={fmt(d2(trained), '.3f')} "
          f"offdist_base={fmt(offdist(base), '.3f')} offdist_trained={fmt(offdist(trained), '.3f')} "
          f"wall_s={time.perf_counter() - start:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
