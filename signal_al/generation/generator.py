"""Step 2 of a round: prompts from the real pool -> a backend -> cleaned, deduplicated candidates.

Every prompt yields one :class:`Candidate`, kept or dropped, so the run log shows every
raw output and the reason a candidate was dropped; the loop adds only the kept ones to S.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from signal_al.config import GeneratorConfig
from signal_al.data.task import TaskSpec, TextDataset
from signal_al.generation.backends.base import GenerationBackend, SamplingParams
from signal_al.generation.cleaning import CleaningRules, Deduplicator, clean_output, dedup_key
from signal_al.generation.prompts import apply_chat_template, cluster_assignments, make_prompts
from signal_al.generation.records import Candidate


def adapter_name(round_index: int) -> str:
    """The served name of round ``round_index``'s adapter (a new name every round)."""
    return f"round-{round_index}"


def pool_keys(*datasets: TextDataset) -> list[str]:
    """Duplicate-check keys of every text in the given pools (R, S, L)."""
    return [dedup_key(text, None if d.text_pairs is None else d.text_pairs[i])
            for d in datasets for i, text in enumerate(d.texts)]


def _pool_embeddings(pool: TextDataset) -> np.ndarray:
    """TF-IDF vectors of the pool: the cluster-diverse fallback when no classifier embeddings are given."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer().fit_transform(pool.texts).toarray()


class CandidateGenerator:
    """Builds prompts, generates with the backend (base or the current adapter) and cleans."""

    def __init__(self, config: GeneratorConfig, spec: TaskSpec, backend: GenerationBackend, tokenizer: Any, *,
                 seed: int = 0) -> None:
        self.config = config
        self.spec = spec
        self.backend = backend
        self.tokenizer = tokenizer
        self.seed = seed
        self.adapter: str | None = None
        self.rules = CleaningRules(min_words=config.min_words, max_words=config.max_words,
                                   drop_meta_commentary=config.drop_meta_commentary)

    def load_adapter(self, path: str | Path, round_index: int) -> str:
        """Serve round ``round_index``'s adapter folder under a new name and use it from now on."""
        name = adapter_name(round_index)
        self.backend.load_adapter(name, path)
        self.adapter = name
        return name

    def sampling(self, seed: int | None) -> SamplingParams:
        c = self.config
        return SamplingParams(max_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, seed=seed,
                              logprobs=c.logprobs)

    def generate(
        self, pool: TextDataset, num: int, *, known: Iterable[str] = (), round_index: int | None = None,
        embeddings: np.ndarray | None = None, seed: int | None = None, adapter: str | None | bool = True,
    ) -> list[Candidate]:
        """``num`` candidates (kept and dropped) from in-context prompts over the real ``pool``.

        ``known``: duplicate-check keys of R ∪ S ∪ L (:func:`pool_keys`); the pool itself is
        always included. ``embeddings``: per pool row, for ``diverse_in_context`` (default:
        TF-IDF). ``adapter``: True = the current adapter, None = the base model, or a name.
        """
        if seed is None:
            seed = self.seed * 1_000_003 + (round_index or 0)
        rng = np.random.default_rng(seed)
        clusters = None
        if self.config.diverse_in_context:
            vectors = embeddings if embeddings is not None else _pool_embeddings(pool)
            clusters = cluster_assignments(vectors, self.config.num_in_context, seed=seed)
        prompts = make_prompts(self.spec, pool, num, self.config.num_in_context, rng,
                               label_conditioned=self.config.label_conditioned, clusters=clusters)
        prefix = self.config.response_prefix
        template = self.config.chat_template
        texts = [(apply_chat_template(self.tokenizer, p.text) if template else p.text) + prefix for p in prompts]
        served = self.adapter if adapter is True else (adapter or None)
        completions = self.backend.generate(texts, self.sampling(seed), served)
        cleaned = [clean_output(prefix + c.text, is_pair=self.spec.is_pair, rules=self.rules,
                                truncated=c.finish_reason == "length") for c in completions]
        dedup = Deduplicator([*pool_keys(pool), *known], threshold=self.config.near_duplicate_threshold)
        reasons = dedup.filter([None if c.drop_reason else dedup_key(c.text or "", c.text_pair) for c in cleaned])
        candidates = []
        for i, (prompt, text, completion, clean) in enumerate(zip(prompts, texts, completions, cleaned)):
            reason = clean.drop_reason or reasons[i]
            candidates.append(Candidate(
                prompt=prompt.text, prompt_text=text, prompt_token_ids=completion.prompt_token_ids,
                completion_token_ids=completion.token_ids, raw_output=completion.text,
                text=None if reason else clean.text, text_pair=None if reason else clean.text_pair,
                drop_reason=reason, adapter=served, round=round_index, label=prompt.label,
                example_ids=prompt.example_ids, seed=seed + i, finish_reason=completion.finish_reason,
                logprobs=completion.logprobs,
            ))
        return candidates


def generate_kept(
    generator: CandidateGenerator, pool: TextDataset, num: int, *, known: Iterable[str] = (), seed: int = 0,
    max_attempts: int = 5, **kwargs: Any,
) -> tuple[list[Candidate], list[Candidate]]:
    """(kept, all) after asking again for what cleaning dropped, until ``num`` are kept or attempts run out."""
    known = list(known)
    kept: list[Candidate] = []
    every: list[Candidate] = []
    for attempt in range(max_attempts):
        missing = num - len(kept)
        if missing <= 0:
            break
        ask = missing if attempt == 0 else max(missing + 2, int(missing * 1.5))
        batch = generator.generate(pool, ask, known=known, seed=seed + attempt * 100_003, **kwargs)
        every += batch
        fresh = [c for c in batch if c.kept][:missing]
        kept += fresh
        known += [dedup_key(c.text or "", c.text_pair) for c in fresh]
    return kept, every


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def create_generator(config: GeneratorConfig, spec: TaskSpec, *, seed: int = 0, device: str = "cpu",
                     backend: GenerationBackend | None = None) -> CandidateGenerator:
    """A CandidateGenerator for ``config`` (the backend is built unless given)."""
    from signal_al.assets import resolve_model
    from signal_al.generation.backends import make_backend

    model = resolve_model(config.model)
    backend = backend or make_backend(config, model=model, device=device)
    tokenizer = getattr(backend, "tokenizer", None) or load_tokenizer(model)
    return CandidateGenerator(config, spec, backend, tokenizer, seed=seed)
