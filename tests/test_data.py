"""Task loading: local files (good and malformed), the real offline corpora, seeded splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import ready_asset
from signal_al.config import DataConfig
from signal_al.core.errors import DataError
from signal_al.data import load_task, real_pool
from signal_al.data.local import load_local_file
from signal_al.data.splits import pool_size_for, split_train_test, subsample_pool

ROWS = [
    ("a fine film", "pos"),
    ("dull and long", "neg"),
    ("I loved it", "pos"),
    ("what a waste", "neg"),
    ("pretty good", "pos"),
    ("boring", "neg"),
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(ROWS))], "review": [r[0] for r in ROWS],
                         "sentiment": [r[1] for r in ROWS]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_local_formats_load_the_same_rows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"reviews{suffix}"
    frame = _frame()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".json":
        frame.to_json(path, orient="records")
    else:
        frame.to_parquet(path)
    spec, data = load_local_file(path, text_column="review", label_column="sentiment")
    assert spec.label_names == ("neg", "pos")
    assert data.texts == [r[0] for r in ROWS]
    assert data.labels.tolist() == [1 if r[1] == "pos" else 0 for r in ROWS]
    assert data.ids == [f"r{i}" for i in range(len(ROWS))]
    assert not spec.is_pair


def test_integer_labels_map_onto_configured_names(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("text,label\nx,1\ny,0\nz,1\n")
    spec, data = load_local_file(path, label_names=["negative", "positive"])
    assert spec.label_names == ("negative", "positive")
    assert data.labels.tolist() == [1, 0, 1]
    spec, data = load_local_file(path)  # inferred, sorted numerically
    assert spec.label_names == ("0", "1")
    assert data.labels.tolist() == [1, 0, 1]


def test_text_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [{"q": "who?", "s": "him.", "y": "entailment"}, {"q": "when?", "s": "blue.", "y": "not_entailment"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec, data = load_local_file(path, text_column="q", text_pair_column="s", label_column="y")
    assert spec.is_pair
    assert data.text_pairs == ["him.", "blue."]


@pytest.mark.parametrize(
    ("content", "kwargs", "pattern"),
    [
        ("text,lbl\nhello,a\nworld,b\n", {}, r"bad\.csv: no label column 'label' \(columns: text, lbl\)"),
        ("body,label\nhello,a\nworld,b\n", {}, r"bad\.csv: no column 'text' \(columns: body, label\)"),
        ("text,label\nhello,a\n   ,b\n", {}, r"bad\.csv: line 3: empty text in column 'text'"),
        ("text,label\nhello,a\nworld,\n", {}, r"bad\.csv: line 3: missing label in column 'label'"),
        ("text,label\nhello,a\nworld,c\n", {"label_names": ["a", "b"]}, r"bad\.csv: line 3: label 'c' is not one of a, b"),
        ("text,label\nhello,a\nworld,a\n", {}, r"bad\.csv: column 'label' has a single label"),
        ("text,label\n", {}, r"bad\.csv: the file has no rows"),
        ('text,label\nhello,a\n"a,b,c\n', {}, r"bad\.csv: line 3: cannot read as csv: unexpected end of data"),
    ],
)
def test_malformed_csv_is_a_one_line_error(tmp_path: Path, content: str, kwargs: dict, pattern: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=pattern) as info:
        load_local_file(path, **kwargs)
    assert "\n" not in str(info.value)


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
        load_local_file(path)


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_local_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unsupported file type"):
        load_local_file(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match="data.task: 'no-such-task' is not a built-in task"):
        load_task(DataConfig(task="no-such-task"))


def test_local_file_with_separate_test_file(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _frame().to_csv(train, index=False)
    test.write_text("review,sentiment\nnice,pos\nbad,neg\n")
    data = load_task(DataConfig(task=str(train), test_file=str(test), text_column="review", label_column="sentiment"))
    assert len(data.train) == len(ROWS)
    assert data.test.texts == ["nice", "bad"]
    assert data.test.labels.tolist() == [1, 0]


def test_split_is_seeded_disjoint_and_stratified() -> None:
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    train, test = split_train_test(labels, 0.2, seed=3)
    again_train, again_test = split_train_test(labels, 0.2, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(labels)
    assert np.bincount(labels[test]).tolist() == [100, 60, 40]
    other_train, _ = split_train_test(labels, 0.2, seed=4)
    assert not np.array_equal(train, other_train)


def test_pool_size_and_stratified_subsample() -> None:
    assert pool_size_for(10_000, fraction=0.001, size=None) == 10
    assert pool_size_for(10_000, fraction=0.01, size=None) == 100
    assert pool_size_for(10_000, fraction=0.01, size=37) == 37
    assert pool_size_for(50, fraction=0.001, size=None) == 1
    with pytest.raises(DataError, match="exceeds"):
        pool_size_for(10, fraction=None, size=11)
    labels = np.repeat([0, 1], [900, 100])
    pool = subsample_pool(labels, 100, seed=0)
    assert len(np.unique(pool)) == 100
    assert np.bincount(labels[pool]).tolist() == [90, 10]
    assert np.array_equal(pool, subsample_pool(labels, 100, seed=0))
    # fewer rows than classes cannot be stratified: falls back to a plain random subset
    assert len(subsample_pool(np.repeat([0, 1, 2, 3], 5), 3, seed=0)) == 3


def _reference_ground_truth(path: Path) -> list[tuple[str, float, str]]:
    """Independent reader: split lines by hand, no quoting."""
    rows = []
    for line in path.read_bytes().decode("utf-8").replace("\r\n", "\n").split("\n"):
        if line.strip():
            item_id, score, text = line.split("\t")
            rows.append((item_id.lstrip("\ufeff"), float(score), text.strip()))
    return rows


def test_rt_movies_is_the_real_corpus() -> None:
    corpus = ready_asset("vader-corpora")
    reference = _reference_ground_truth(corpus / "movieReviewSnippets_GroundTruth.txt")
    expected = [(text, int(score > 0)) for _, score, text in reference if score != 0]
    assert 10_400 < len(expected) < 10_700
    data = load_task(DataConfig(task="rt-movies"))
    got = sorted(zip(data.train.texts + data.test.texts, np.concatenate([data.train.labels, data.test.labels])))
    assert [(t, int(y)) for t, y in got] == sorted(expected)
    assert abs(len(data.test) - 0.2 * len(expected)) <= 1
    assert data.spec.label_names == ("negative", "positive")
    assert data.spec.instruction.startswith("Based on the following examples of movie reviews")


def test_vader_sources_labels_each_sentence_with_its_corpus() -> None:
    corpus = ready_asset("vader-corpora")
    files = ["movieReviewSnippets", "tweets", "nytEditorialSnippets", "amazonReviewSnippets"]
    first_source: dict[str, int] = {}
    for label, stem in enumerate(files):
        for _, _, text in _reference_ground_truth(corpus / f"{stem}_GroundTruth.txt"):
            first_source.setdefault(text, label)
    data = load_task(DataConfig(task="vader-sources"))
    texts = data.train.texts + data.test.texts
    labels = np.concatenate([data.train.labels, data.test.labels])
    assert len(texts) == len(set(texts)) == len(first_source)
    assert all(first_source[t] == y for t, y in zip(texts, labels))
    assert data.spec.label_names == ("movie", "tweet", "news", "product")
    assert set(data.test.texts).isdisjoint(data.train.texts)


def test_real_pool_depends_on_run_seed_but_test_split_does_not() -> None:
    config = DataConfig(task="rt-movies", pool_fraction=0.01)
    data = load_task(config)
    pool_a, pool_b = real_pool(data, config, seed=0), real_pool(data, config, seed=1)
    assert len(pool_a) == len(pool_b) == round(0.01 * len(data.train))
    assert pool_a.ids != pool_b.ids
    assert set(pool_a.ids) <= set(data.train.ids)
    assert load_task(config).test.ids == data.test.ids
    small = load_task(DataConfig(task="rt-movies", max_test_size=100))
    assert len(small.test) == 100 and set(small.test.ids) <= set(data.test.ids)


def test_duplicate_and_empty_ids_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t, "label": l}) + "\n"
                            for i, (t, l) in zip([7, 8, 7], ROWS)))
    with pytest.raises(DataError, match=r"d.jsonl: line 3: id '7' already used at line 1"):
        load_local_file(path)
    path.write_text("".join(json.dumps({"id": i, "text": t, "label": l}) + "\n"
                            for i, (t, l) in zip([7, None], ROWS)))
    with pytest.raises(DataError, match=r"line 2: empty value in column 'id'"):
        load_local_file(path)


@pytest.mark.parametrize("missing", ["NaN", "nan", "NULL", "N/A", "None", ""])
def test_missing_label_spellings_are_not_classes(tmp_path: Path, missing: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(f"text,label\na fine film,pos\ndull,{missing}\nboring,neg\n")
    with pytest.raises(DataError, match=r"line 3: missing label"):
        load_local_file(path)


def test_a_configured_label_named_like_a_missing_value_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\na fine film,NA\ndull,EU\n")
    _, data = load_local_file(path, label_names=["NA", "EU"])
    assert data.labels.tolist() == [0, 1]
