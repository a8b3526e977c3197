"""Write a corpus of long texts (whole Amazon reviews and NYT editorials, 150-190 words) as a CSV.

The built-in tasks hold sentences of about 20 words, so they never show what prompt length
costs. VADER's amazon and NYT files are sentence snippets whose ids (``<doc>_<sentence>``)
name the document they came from; joined back, they are the long texts a user brings. The
label is the sign of the document's mean human sentiment (``positive`` when >= 0). Used by
``results/round-cost/`` to time a SIGnAL round with and without ``generator.max_example_tokens``::

    python scripts/make_long_reviews.py --out /tmp/long_reviews.csv
    python scripts/bench_round.py --round 1 --set data.task=/tmp/long_reviews.csv --set data.pool_size=60
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from signal_al.assets.registry import asset_path, cache_dir
from signal_al.data.offline import read_ground_truth

SOURCES = ("amazonReviewSnippets_GroundTruth.txt", "nytEditorialSnippets_GroundTruth.txt")


def documents(folder: Path) -> list[tuple[str, str, str]]:
    """``(id, text, label)`` per document of the amazon and NYT snippet files, sentences in file order."""
    rows = []
    for name in SOURCES:
        ids, texts, scores = read_ground_truth(folder / name)
        sentences: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for snippet, text, score in zip(ids, texts, scores):
            sentences[snippet.split("_")[0]].append((float(score), text))
        for doc, items in sentences.items():
            mean = sum(score for score, _ in items) / len(items)
            rows.append((f"{name.split('Snippets')[0]}:{doc}", " ".join(text for _, text in items),
                         "positive" if mean >= 0 else "negative"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (columns id, text, label).")
    args = parser.parse_args()
    rows = documents(asset_path("vader-corpora", cache_dir()))
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerows(rows)
    words = sorted(len(text.split()) for _, text, _ in rows)
    print(f"{args.out}: {len(rows)} documents, median {words[len(words) // 2]} words, "
          f"{sum(label == 'positive' for *_, label in rows)} positive")


if __name__ == "__main__":
    main()
