"""How often the base generator writes meta-commentary instead of an example, per prompt variant.

Issue 8 found that about half of SmolLM2-135M's kept candidates talk about the prompt
("In this example, Sentence 1 ..."). This probe asks the *base* model for ``--num``
candidates from the same in-context prompts under each variant and prints, side by side,
how many survive cleaning, how many of those are meta-commentary, and their distinct-2:

- ``chat``: the paper's prompt in the chat template (the default);
- ``chat + prefix P``: the same with ``generator.response_prefix: P`` (the answer opens with P);
- ``raw``: ``generator.chat_template: false``, the prompt as plain text to continue.

    python scripts/probe_prompts.py --task rt-movies --num 64 --prefix "New Example:" --prefix '"'

It runs the transformers backend on CPU (about 2 min per variant for 64 candidates on one core).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from signal_al.assets.registry import resolve_model
from signal_al.classifier.metrics import distinct_n
from signal_al.config import GeneratorConfig
from signal_al.core.progress import progress_bar
from signal_al.data.offline import OFFLINE_TASKS, load_offline_task
from signal_al.data.task import TextDataset
from signal_al.generation.backends import make_backend
from signal_al.generation.cleaning import is_meta_commentary
from signal_al.generation.generator import CandidateGenerator, load_tokenizer


def probe(generator: CandidateGenerator, pool: TextDataset, num: int) -> dict[str, float]:
    start = time.perf_counter()
    candidates = generator.generate(pool, num, seed=0, adapter=None)
    kept = [c.text for c in candidates if c.kept]
    meta = sum(is_meta_commentary(text) for text in kept)
    return {"kept": len(kept), "meta": meta, "meta_pct": 100 * meta / max(1, len(kept)),
            "distinct2": distinct_n(kept, 2) if kept else float("nan"), "seconds": time.perf_counter() - start,
            "examples": kept[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="rt-movies", choices=sorted(OFFLINE_TASKS))
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Offline asset name or model folder.")
    parser.add_argument("--num", type=int, default=64, help="Candidates per variant (same prompts for each).")
    parser.add_argument("--pool", type=int, default=85, help="Real pool size the in-context examples come from.")
    parser.add_argument("--prefix", action="append", default=[], help="A response prefix to try (repeatable).")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = GeneratorConfig(model=args.model, backend="transformers", dtype="float32",
                             max_new_tokens=args.max_new_tokens, num_in_context=3)
    model = resolve_model(config.model)
    backend = make_backend(config, model=model, device="cpu")
    tokenizer = load_tokenizer(model)
    spec, data = load_offline_task(args.task)
    rows = np.random.default_rng(args.seed).choice(len(data.texts), min(args.pool, len(data.texts)), replace=False)
    pool = TextDataset(texts=[data.texts[i] for i in rows], labels=data.labels[rows], ids=[data.ids[i] for i in rows])

    variants = [("chat", config)]
    variants += [(f"chat + prefix {prefix!r}", dataclasses.replace(config, response_prefix=prefix))
                 for prefix in args.prefix]
    variants.append(("raw (chat_template: false)", dataclasses.replace(config, chat_template=False)))
    results = {}
    for name, variant in progress_bar(variants, desc="variants", unit="variant"):
        results[name] = probe(CandidateGenerator(variant, spec, backend, tokenizer, seed=args.seed), pool, args.num)
    print(f"\n{args.task}, {args.num} prompts per variant, base model {args.model}\n")
    print("| variant | kept | meta-commentary among kept | distinct-2 | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['kept']}/{args.num} | {r['meta']} ({r['meta_pct']:.0f} %) | {r['distinct2']:.3f} "
              f"| {r['seconds']:.0f} |")
    for name, r in results.items():
        print(f"\n{name}:")
        for text in r["examples"]:
            print(f"  - {text[:120]}")


if __name__ == "__main__":
    main()
