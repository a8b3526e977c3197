"""scripts/make_long_reviews.py: VADER's snippets joined back into their documents (fast, no model)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from make_long_reviews import SOURCES, documents  # noqa: E402


def test_snippets_are_joined_per_document_with_the_sign_of_their_mean(tmp_path: Path) -> None:
    amazon, nyt = SOURCES
    (tmp_path / amazon).write_text("1_1\t-0.9\tNo picture.\n1_2\t1.2\tBut great sound.\n2_1\t-0.1\tMeh.\n",
                                   encoding="utf-8")
    (tmp_path / nyt).write_text("7_1\t0.0\tThe council met.\n7_2\t0.0\tIt adjourned.\n", encoding="utf-8")
    rows = documents(tmp_path)
    # mean(-0.9, 1.2) = +0.15 >= 0: positive; -0.1: negative; a 0.0 mean counts as positive
    assert rows == [("amazonReview:1", "No picture. But great sound.", "positive"),
                    ("amazonReview:2", "Meh.", "negative"),
                    ("nytEditorial:7", "The council met. It adjourned.", "positive")]
