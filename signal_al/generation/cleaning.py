"""Turning a raw generation into one clean example, and dropping duplicates of the pools.

Small instruction models wrap the example in chatter ("Sure! Here's a new example: ...",
quotes, "New Example:", an explanation on the next lines). Only the example itself may
enter the synthetic pool; everything else would reward the generator for chatter. A
candidate that is empty, too short or long, or an exact or near duplicate (same normalised
text, or word n-gram cosine >= threshold) of anything already in R, S or L is dropped,
and the reason is kept on the record.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

# Drop reasons (stored on every dropped candidate and in the run log).
EMPTY = "empty"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
MISSING_PAIR_FIELD = "missing_pair_field"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"
DUPLICATE_IN_BATCH = "duplicate_in_batch"
TRUNCATED = "truncated"
META_COMMENTARY = "meta_commentary"
# Not from cleaning: the prompt never produced a completion (these candidates have no tokens).
PROMPT_TOO_LONG = "prompt_too_long"  # does not fit max_model_len - max_new_tokens even without examples
REQUEST_REJECTED = "request_rejected"  # the backend refused the prompt (e.g. a server 400)

_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`", "\u00ab": "\u00bb"}
# "Sure! Here's a new example of a movie review:" / "Okay, here is one:" (a lead-in line ending in a colon).
_CHATTER_LEAD = re.compile(
    r"^\s*(?:(?:sure|okay|ok|certainly|of course)[!,.]?\s*)?(?:here(?:'s| is| are)|this is)\b[^\n:]{0,100}:\s*",
    re.IGNORECASE,
)
_CHATTER_ONLY = re.compile(r"^\s*(?:sure|okay|ok|certainly|of course)[!,.]\s*", re.IGNORECASE)
# "New Example:", "Example 4:", "**New Example 2:**", "Review:".
_FIELD_LEAD = re.compile(r"^\s*\**\s*(?:new\s+)?(?:example|review|sentence|text)(?:\s*#?\d+)?\s*\**\s*[:.)\-]\s*\**\s*",
                         re.IGNORECASE)
# Text about the prompt instead of an example: "In this example, Sentence 1 serves as ...",
# "I'm glad I could provide ...", "Each example showcases ...". Matches 0.4-0.5 % of the real
# rt-movies / vader-sources train texts and about half of SmolLM2-135M's kept candidates.
_META = re.compile(
    r"\b(?:examples?|(?:sentence|statement|text|review)s?\s*#?\d|the above|(?:this|previous|my|your|these|those|"
    r"following) (?:reviews?|sentences?|lists?|examples?)|i'?m glad|i am glad|rewritten|as an ai)\b",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*\u2022])\s+")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*(?=\s|$)")
_PAIR = re.compile(r"Text 1:\s*(?P<first>.+?)\s*(?:\n\s*)?Text 2:\s*(?P<second>[^\n]+)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class CleaningRules:
    """Length bounds in words (per field for pair tasks)."""

    min_words: int = 3
    max_words: int = 80
    drop_meta_commentary: bool = False
    """Drop text about the prompt or the examples rather than an example (see ``_META``)."""


@dataclass(frozen=True)
class Cleaned:
    """The cleaned example (``None`` fields when dropped) and why it was dropped, if it was."""

    text: str | None
    text_pair: str | None = None
    drop_reason: str | None = None


def _strip_lead_ins(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _CHATTER_LEAD.sub("", text, count=1)
        text = _CHATTER_ONLY.sub("", text, count=1)
        text = _FIELD_LEAD.sub("", text, count=1).lstrip()
        text = _LIST_ITEM.sub("", text, count=1)
    return text


def _strip_quotes(text: str) -> str:
    """Quoted content when the text opens with a quote (drops chatter after the closing quote)."""
    text = text.strip().strip("*").strip()
    if text and text[0] in _QUOTES:
        close = _QUOTES[text[0]]
        end = text.find(close, 1)
        if end >= 1 and (close != "'" or end == len(text) - 1 or not text[end + 1].isalpha()):
            return text[1:end].strip()
        return text[1:].strip()
    return text


def _first_line(text: str) -> str:
    """The first non-empty line; a lead-in line ending in a colon gives way to the next one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return lines[1]
    return lines[0] if lines else ""


def _cut_to_sentence(text: str) -> str:
    """Up to the last sentence end (for outputs cut off by the token limit); empty when none."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()].strip() if ends else ""


def _squash(text: str) -> str:
    return " ".join(text.split())


def extract_text(raw: str, *, truncated: bool = False) -> str:
    """The example in a single-text output: no lead-ins, first line only, no wrapping quotes.

    ``truncated``: the output hit the token limit; if the example runs to the end of the
    output, it is cut back to its last complete sentence.
    """
    text = _strip_lead_ins(raw.strip())
    line = _strip_lead_ins(_first_line(text))
    if truncated and raw.rstrip().endswith(line.rstrip()):
        line = _cut_to_sentence(line)
    return _squash(_strip_quotes(line))


def extract_pair(raw: str) -> tuple[str, str] | None:
    """Both fields of a pair output (``Text 1: ... Text 2: ...``), or None when one is missing."""
    match = _PAIR.search(raw)
    if match is None:
        return None
    first = _squash(_strip_quotes(_first_line(match.group("first"))))
    second = _squash(_strip_quotes(match.group("second")))
    return first, second


def _length_reason(text: str, rules: CleaningRules) -> str | None:
    words = len(text.split())
    if words == 0:
        return EMPTY
    if words < rules.min_words:
        return TOO_SHORT
    if words > rules.max_words:
        return TOO_LONG
    return None


def clean_output(raw: str, *, is_pair: bool = False, rules: CleaningRules = CleaningRules(),
                 truncated: bool = False) -> Cleaned:
    """The generated example, or the reason it cannot be used (before deduplication).

    >>> clean_output('Sure! Here is a new example:\\n"A warm, funny film." This review is positive.').text
    'A warm, funny film.'
    """
    if not raw.strip():
        return Cleaned(None, None, EMPTY)
    if is_pair:
        pair = extract_pair(raw)
        if pair is None:
            return Cleaned(None, None, MISSING_PAIR_FIELD)
        for part in pair:
            reason = _length_reason(part, CleaningRules(min_words=1, max_words=rules.max_words))
            if reason is not None:
                return Cleaned(None, None, reason if reason != EMPTY else MISSING_PAIR_FIELD)
        if rules.drop_meta_commentary and any(is_meta_commentary(part) for part in pair):
            return Cleaned(None, None, META_COMMENTARY)
        return Cleaned(pair[0], pair[1], None)
    text = extract_text(raw, truncated=truncated)
    if truncated and not text and extract_text(raw):
        return Cleaned(None, None, TRUNCATED)
    reason = _length_reason(text, rules)
    if reason is None and rules.drop_meta_commentary and is_meta_commentary(text):
        reason = META_COMMENTARY
    return Cleaned(None if reason else text, None, reason)


def is_meta_commentary(text: str) -> bool:
    """Whether ``text`` talks about the prompt or its examples instead of being an example."""
    return _META.search(text) is not None


def normalize(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive key for duplicate checks."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def dedup_key(text: str, text_pair: str | None = None) -> str:
    return normalize(text) if text_pair is None else f"{normalize(text)} || {normalize(text_pair)}"


class Deduplicator:
    """Exact (normalised) and near (word 1-2-gram cosine) duplicate checks against known texts.

    Known texts are R ∪ S ∪ L; every kept candidate is added, so later batches are checked
    against earlier ones too.
    """

    def __init__(self, known: Iterable[str] = (), *, threshold: float = 0.9) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.threshold = threshold
        self._vectorizer = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=2**20,
                                             alternate_sign=False, norm="l2", preprocessor=normalize)
        self._keys: set[str] = set()
        self._matrices: list = []
        self.add(list(known))

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, keys: Sequence[str]) -> None:
        """Remember already-normalisable texts (use :func:`dedup_key` for pairs)."""
        keys = [k for k in keys if k]
        if keys:
            self._keys.update(normalize(k) for k in keys)
            self._matrices.append(self._vectorizer.transform(keys))

    def _known_similarity(self, vectors) -> np.ndarray:
        best = np.zeros(vectors.shape[0])
        for matrix in self._matrices:
            best = np.maximum(best, (vectors @ matrix.T).max(axis=1).toarray().ravel())
        return best

    def filter(self, keys: Sequence[str | None]) -> list[str | None]:
        """Drop reason (or None) per key; ``None`` keys (already dropped) stay None. Kept keys are added."""
        reasons: list[str | None] = [None] * len(keys)
        present = [i for i, k in enumerate(keys) if k]
        if not present:
            return reasons
        texts = [keys[i] for i in present]
        vectors = self._vectorizer.transform(texts)
        known_sim = self._known_similarity(vectors)
        batch_sim = (vectors @ vectors.T).toarray()
        kept: list[int] = []
        batch_keys: set[str] = set()
        for row, i in enumerate(present):
            key = normalize(texts[row])
            if not key:
                reasons[i] = EMPTY
            elif key in batch_keys:
                reasons[i] = DUPLICATE_IN_BATCH
            elif key in self._keys:
                reasons[i] = DUPLICATE
            elif known_sim[row] >= self.threshold:
                reasons[i] = NEAR_DUPLICATE
            elif any(batch_sim[row, other] >= self.threshold for other in kept):
                reasons[i] = DUPLICATE_IN_BATCH
            else:
                kept.append(row)
                batch_keys.add(key)
        if kept:
            self._keys.update(batch_keys)
            self._matrices.append(vectors[kept])
        return reasons
