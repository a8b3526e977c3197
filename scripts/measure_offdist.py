"""Does off-distribution text outscore real text under the SIGnAL score, and does ``reward.relevance`` fix it?

With L2-normalised embeddings the distance term of the SIGnAL score varies by at most ~2x while
the KL term varies by orders of magnitude, so text the classifier finds strange (meta-commentary
about the prompt, text from another domain, word salad) can score above real-looking text, and a
generator trained on the score learns to write it. This script trains the round's classifier once
(``minilm-l6`` on a seeded, stratified labeled set of ``--labeled`` train texts, the loop's recipe),
then scores four kinds of text against that labeled set:

- ``real``: held-out real train texts (never labeled), also the relevance reference set, as the
  real unlabeled pool rows are in the loop;
- ``meta``: meta-commentary in the style SmolLM2-135M writes ("In this example, Sentence 1 is ...");
- ``other-task``: text from another task (vader tweets/news for rt-movies; generic sentences about
  unrelated topics for vader-sources, whose own classes cover movies, tweets, news and products);
- ``shuffled``: the real held-out texts with their words shuffled.

It prints the mean/median score per kind under the paper's formula (``relevance: none``) and each
relevance option, the share of each kind flagged by :func:`signal_al.rewards.offdist_flags`, and
writes the tables to ``results/offdist/<task>.md``.

    HF_HUB_OFFLINE=1 python scripts/measure_offdist.py --task rt-movies
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from signal_al.config import DataConfig
from signal_al.rewards import RewardConfig, knn_mean_distances, offdist_flags, signal_scores

KINDS = ("real", "meta", "other-task", "shuffled")

#: Meta-commentary in the shapes SmolLM2-135M writes instead of an example (see
#: signal_al.generation.cleaning._META); {a}/{b} are label names, {d} the task's domain.
META_TEMPLATES = (
    "In this example, Sentence 1 is a {a} review and Sentence 2 is a {b} one.",
    "In this example, the first sentence expresses a {a} opinion while the second is {b}.",
    "I'm glad I could help! Here is another example of {d} that is {a}.",
    "Each example showcases a different {a} aspect of the text, as requested.",
    "The above examples are {a} and {b}; the new example should follow the same style.",
    "Sentence 3 is {b} because it uses words that express a {b} feeling.",
    "Here is a rewritten version of the previous examples with a {a} tone.",
    "These examples show how {d} can be {a} or {b} depending on the wording.",
    "As an AI, I can write a new example of {d} that sounds {a}.",
    "This review is {a}, just like the following examples of {d}.",
    "Note that Text 2 in the list is {b}, while the others are {a}.",
    "Sure! Below is a new example that matches the {a} examples above.",
    "My examples are meant to be {a}; let me know if you need a {b} one.",
    "In the given examples, each sentence is labeled as {a} or {b}.",
    "The following reviews are examples of {d} with a {b} sentiment.",
    "Example 4: a {a} sentence similar to the examples provided.",
)

#: Generic sentences unrelated to movies, tweets, news editorials or product reviews.
GENERIC = (
    "The mitochondria produce most of the chemical energy needed by a cell.",
    "Preheat the oven to 180 degrees and grease a round baking tin.",
    "The tenant shall pay the rent on the first day of each calendar month.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "To install the package, run the setup script with administrator rights.",
    "The river rises in the mountains and flows north for three hundred kilometres.",
    "Add two cups of flour and stir until the dough is smooth.",
    "The function returns a list of integers sorted in ascending order.",
    "Granite is an igneous rock composed mainly of quartz and feldspar.",
    "The committee meets on the second Tuesday of every month at noon.",
    "Water boils at a lower temperature at high altitude.",
    "The train to the airport departs every fifteen minutes from platform two.",
    "Each participant completed a questionnaire before the first session.",
    "The theorem follows from the triangle inequality and induction on n.",
    "Store the medicine in a cool, dry place away from direct sunlight.",
    "The library is closed on public holidays and Sunday mornings.",
    "A prime number has exactly two distinct positive divisors.",
    "Turn left at the second roundabout and continue for two miles.",
    "The bridge was completed in 1932 after six years of construction.",
    "Insert the battery with the positive terminal facing upwards.",
    "The enzyme breaks down starch into simpler sugars during digestion.",
    "Applicants must submit two references and a copy of their passport.",
    "The glacier has retreated about forty metres since the survey began.",
    "Cut the fabric along the dotted line and fold it in half.",
    "The spreadsheet lists the inventory of each warehouse by region.",
    "Copper conducts heat and electricity better than most metals.",
    "Please remove your shoes before entering the laboratory.",
    "The village lies at the foot of a limestone ridge.",
    "The algorithm visits every node of the graph exactly once.",
    "Soak the beans overnight and drain them before cooking.",
    "The invoice must be paid within thirty days of receipt.",
    "Bees communicate the location of flowers with a waggle dance.",
    "The server restarts automatically after the update is installed.",
    "The museum's collection includes fossils from the Jurassic period.",
    "Tighten the bolts in a diagonal pattern to seat the wheel evenly.",
    "The sample was centrifuged for ten minutes at four degrees.",
    "Volcanic soil is rich in minerals that help crops grow.",
    "The contract ends automatically unless either party renews it.",
    "Most owls hunt at night and rest during the day.",
    "Replace the filter every three months for the best air quality.",
)


def shuffle_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def kind_texts(task: str, data, unlabeled_texts: list[str], n: int, seed: int) -> dict[str, list[str]]:
    """The texts of each kind (``real`` first: it is also the relevance reference)."""
    rng = random.Random(seed)
    names = data.spec.label_names
    meta = []
    for i in range(n):
        a, b = rng.sample(names, 2) if len(names) > 1 else (names[0], names[0])
        meta.append(META_TEMPLATES[i % len(META_TEMPLATES)].format(a=a, b=b, d=data.spec.domain))
    if task == "rt-movies":
        from signal_al.data import load_task

        vader = load_task(DataConfig(task="vader-sources"))
        other = [t for t, y in zip(vader.train.texts, vader.train.labels) if y in (1, 2)]  # tweet, news
        other = rng.sample(other, n)
    else:
        other = [GENERIC[i % len(GENERIC)] for i in range(min(n, len(GENERIC)))]
    shuffled = [shuffle_words(t, rng) for t in unlabeled_texts[:n]]
    return {"real": unlabeled_texts, "meta": meta, "other-task": other, "shuffled": shuffled}


def featurize(task: str, n_labeled: int, n_real: int, n_kind: int, seed: int, cache: Path) -> dict[str, np.ndarray]:
    """Probabilities and embeddings of the labeled set and each kind (cached in ``cache``)."""
    if cache.exists():
        return dict(np.load(cache))
    from signal_al.assets.registry import resolve_model
    from signal_al.classifier.config import ClassifierConfig
    from signal_al.classifier.inference import predict
    from signal_al.classifier.training import load_classifier, load_tokenizer, train_classifier
    from signal_al.core.runtime import seed_everything
    from signal_al.data import load_task
    from signal_al.data.splits import subsample_pool

    data = load_task(DataConfig(task=task))
    rows = subsample_pool(data.train.labels, n_labeled + n_real, seed=seed, stratify=True)
    rows = np.random.default_rng(seed).permutation(rows)
    labeled = data.train.subset(np.sort(rows[:n_labeled]))
    unlabeled = data.train.subset(np.sort(rows[n_labeled:]))
    source = resolve_model("minilm-l6")
    tokenizer = load_tokenizer(source)
    seed_everything(seed)
    model = load_classifier(source, data.spec.label_names)
    t0 = time.perf_counter()
    train_classifier(model, tokenizer, labeled, ClassifierConfig(), seed=seed, device="cpu", progress=False)
    print(f"{task}: trained on {len(labeled)} labeled texts in {time.perf_counter() - t0:.0f}s")
    out: dict[str, np.ndarray] = {}
    texts = {"labeled": labeled.texts, **kind_texts(task, data, unlabeled.texts, n_kind, seed)}
    for kind, items in texts.items():
        o = predict(model, tokenizer, items, batch_size=64, max_length=128, device="cpu")
        out[f"{kind}/probs"], out[f"{kind}/emb"] = o.probs, o.embeddings
        out[f"{kind}/texts"] = np.array(items, dtype=object).astype(str)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


#: The options compared: name -> the ``reward.*`` overrides.
OPTIONS = {
    "none (paper)": {},
    "quantile q=0.95": {"relevance": "quantile", "relevance_quantile": 0.95},
    "quantile q=0.9": {"relevance": "quantile", "relevance_quantile": 0.9},
    "typical q=0.95": {"relevance": "typical", "relevance_quantile": 0.95},
    "typical q=0.9": {"relevance": "typical", "relevance_quantile": 0.9},
}


def measure(task: str, feats: dict[str, np.ndarray], reward: RewardConfig) -> tuple[str, list[str]]:
    """The markdown tables (scores per kind and option; off-distribution flags) and console lines."""
    pl, el = feats["labeled/probs"], feats["labeled/emb"]
    reference = knn_mean_distances(feats["real/emb"], el, k=reward.k, normalize=reward.normalize)
    lines = [f"## {task}: SIGnAL score per kind of text (k={reward.k}, {len(pl)} labeled texts, "
             f"{len(reference)} real reference texts)", "",
             "| option | " + " | ".join(f"{k} mean / median" for k in KINDS) + " | off-dist below real (mean) |",
             "|---|" + "---|" * (len(KINDS) + 1)]
    for name, overrides in OPTIONS.items():
        cfg = RewardConfig(**{**vars(reward), **overrides})
        cells, means = [], {}
        for kind in KINDS:
            s = signal_scores(feats[f"{kind}/probs"], feats[f"{kind}/emb"], pl, el, cfg,
                              reference_distances=reference)
            means[kind] = s.mean()
            cells.append(f"{s.mean():.4g} / {np.median(s):.4g}")
        ok = all(means[k] < means["real"] for k in KINDS[1:])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
    lines += ["", "Mean k-NN distance to the labeled set, and the share flagged by `offdist_flags` "
              "(beyond the real texts' q-quantile; two-sided: also below their 1-q quantile):", "",
              "| kind | mean distance | median distance | flagged q=0.9 | flagged q=0.95 | flagged q=0.9 two-sided "
              "| flagged q=0.95 two-sided |", "|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        d = knn_mean_distances(feats[f"{kind}/emb"], el, k=reward.k, normalize=reward.normalize)
        flags = [offdist_flags(d, reference, quantile=q, two_sided=two).mean()
                 for two in (False, True) for q in (0.9, 0.95)]
        lines.append(f"| {kind} | {d.mean():.4f} | {np.median(d):.4f} | " + " | ".join(f"{f:.0%}" for f in flags)
                     + " |")
    return "\n".join(lines) + "\n", lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", choices=["rt-movies", "vader-sources"],
                        help="Task(s) to measure (default: both).")
    parser.add_argument("--labeled", type=int, default=40, help="Labeled set size.")
    parser.add_argument("--real", type=int, default=400, help="Held-out real texts (the reference set).")
    parser.add_argument("--per-kind", type=int, default=80, help="Texts of each off-distribution kind.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/signal-al-offdist"),
                        help="Folder caching the classifier outputs (delete it to retrain).")
    parser.add_argument("--out", type=Path, default=Path("results/offdist"))
    args = parser.parse_args()
    for task in args.task or ["rt-movies", "vader-sources"]:
        cache = args.cache / f"{task}-L{args.labeled}-R{args.real}-n{args.per_kind}-seed{args.seed}.npz"
        feats = featurize(task, args.labeled, args.real, args.per_kind, args.seed, cache)
        table, lines = measure(task, feats, RewardConfig())
        print("\n".join(lines) + "\n")
        args.out.mkdir(parents=True, exist_ok=True)
        header = (f"# Off-distribution text under the SIGnAL score: {task}\n\n"
                  f"Written by `scripts/measure_offdist.py --task {task}` (seed {args.seed}, minilm-l6 trained "
                  f"once on {args.labeled} labeled texts, CPU).\n\n")
        (args.out / f"{task}.md").write_text(header + table)


if __name__ == "__main__":
    main()
