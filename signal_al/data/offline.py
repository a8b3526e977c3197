"""Built-in offline tasks from the vaderSentiment 3.3.2 corpora (Hutto & Gilbert, ICWSM 2014).

Each ``*_GroundTruth.txt`` file is tab-separated: id, mean human polarity score, text.
It is read with quoting off: the movie sentences contain ``''`` and stray quote marks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from signal_al.assets.registry import asset_path
from signal_al.core.errors import DataError
from signal_al.data.task import TaskSpec, TextDataset

SOURCES = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "tweet": "tweets_GroundTruth.txt",
    "news": "nytEditorialSnippets_GroundTruth.txt",
    "product": "amazonReviewSnippets_GroundTruth.txt",
}

RT_MOVIES = TaskSpec(
    name="rt-movies",
    label_names=("negative", "positive"),
    domain="movie reviews",
)

VADER_SOURCES = TaskSpec(
    name="vader-sources",
    label_names=("movie", "tweet", "news", "product"),
    domain="short texts (movie reviews, tweets, news editorials and product reviews)",
)

OFFLINE_TASKS = {spec.name: spec for spec in (RT_MOVIES, VADER_SOURCES)}


def read_ground_truth(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, texts, mean scores) of one ground-truth file; a malformed line is a DataError."""
    ids: list[str] = []
    texts: list[str] = []
    scores: list[float] = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise DataError(f"{path}:{line_number}: expected 3 tab-separated fields, found {len(fields)}")
            try:
                score = float(fields[1])
            except ValueError:
                raise DataError(f"{path}:{line_number}: score {fields[1]!r} is not a number") from None
            text = fields[2].strip()
            if not text:
                raise DataError(f"{path}:{line_number}: empty text")
            ids.append(fields[0].strip())
            texts.append(text)
            scores.append(score)
    return ids, texts, np.asarray(scores, dtype=np.float64)


def load_offline_task(name: str, cache_root: Path | None = None) -> tuple[TaskSpec, TextDataset]:
    """The whole corpus of a built-in task (no split yet)."""
    folder = asset_path("vader-corpora", cache_root)
    if name == "rt-movies":
        ids, texts, scores = read_ground_truth(folder / SOURCES["movie"])
        keep = scores != 0.0
        labels = (scores[keep] > 0).astype(np.int64)
        texts = [t for t, k in zip(texts, keep) if k]
        ids = [f"movie:{i}" for i, k in zip(ids, keep) if k]
        return RT_MOVIES, TextDataset(texts=texts, labels=labels, ids=ids)
    if name == "vader-sources":
        seen: set[str] = set()
        all_ids: list[str] = []
        all_texts: list[str] = []
        all_labels: list[int] = []
        for label, source in enumerate(VADER_SOURCES.label_names):
            ids, texts, _ = read_ground_truth(folder / SOURCES[source])
            for item_id, text in zip(ids, texts):
                if text in seen:  # exact duplicates would leak between train and test
                    continue
                seen.add(text)
                all_ids.append(f"{source}:{item_id}")
                all_texts.append(text)
                all_labels.append(label)
        return VADER_SOURCES, TextDataset(texts=all_texts, labels=np.asarray(all_labels), ids=all_ids)
    raise DataError(f"unknown offline task '{name}'; built-in tasks: {', '.join(OFFLINE_TASKS)}")
