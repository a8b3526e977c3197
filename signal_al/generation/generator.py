"""Step 2 of a round: prompts from the real pool -> a backend -> cleaned, deduplicated candidates.

Every prompt yields ``samples_per_prompt`` :class:`Candidate` records (one by default, as in
the paper), kept or dropped, so the run log shows every raw output and the reason a
candidate was dropped; the loop adds only the kept ones to S. Prompts are cut to fit the
generator's context, and a prompt the backend refuses is dropped, so neither ends a run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from signal_al.data.task import TaskSpec, TextDataset
from signal_al.generation.backends.base import GenerationBackend, SamplingParams
from signal_al.generation.cleaning import (PROMPT_TOO_LONG, REQUEST_REJECTED, CleaningRules, Deduplicator, clean_output,
                                           dedup_key)
from signal_al.generation.config import GeneratorConfig
from signal_al.generation.prompts import (Prompt, apply_chat_template, cap_examples, cluster_assignments, count_tokens,
                                          fit_prompt, make_prompts)
from signal_al.generation.records import Candidate


def adapter_name(round_index: int, path: str | Path | None = None) -> str:
    """The served name of round ``round_index``'s adapter folder: ``round-N-<content hash>``.

    A server keeps the first adapter loaded under a name (loading it again is accepted), so
    names must be unique to the adapter: two runs sharing a server would otherwise generate
    with each other's round-N adapter. The hash covers the weights and adapter config only,
    so the same adapter reloaded after a resume keeps its name. Without ``path``: ``round-N``.
    """
    if path is None:
        return f"round-{round_index}"
    import hashlib

    digest = hashlib.sha256()
    folder = Path(path)
    for file in sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith("adapter_")):
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes())
    return f"round-{round_index}-{digest.hexdigest()[:12]}"


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
                 seed: int = 0, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.spec = spec
        self.backend = backend
        self.tokenizer = tokenizer
        self.seed = seed
        self.log = log
        self.adapter: str | None = None
        self._logged_example_cap = False
        self.rules = CleaningRules(min_words=config.min_words, max_words=config.max_words,
                                   drop_meta_commentary=config.drop_meta_commentary)

    def load_adapter(self, path: str | Path, round_index: int) -> str:
        """Serve round ``round_index``'s adapter folder under a name unique to its content and use it from now on."""
        name = adapter_name(round_index, path)
        self.backend.load_adapter(name, path)
        self.adapter = name
        return name

    def sampling(self, seed: int | None, samples_per_prompt: int = 1) -> SamplingParams:
        c = self.config
        return SamplingParams(max_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, seed=seed,
                              logprobs=c.logprobs, n=samples_per_prompt)

    def render(self, prompt_text: str) -> str:
        """What the model sees for a prompt: the chat template (unless off), then the response prefix."""
        templated = apply_chat_template(self.tokenizer, prompt_text) if self.config.chat_template else prompt_text
        return templated + self.config.response_prefix

    @property
    def max_prompt_tokens(self) -> int:
        """Longest prompt the context allows: the server refuses prompt + max_new_tokens > max_model_len."""
        return self.config.max_model_len - self.config.max_new_tokens

    def fit_prompts(self, prompts: list[Prompt]) -> list[Prompt | None]:
        """Each prompt's examples cut to ``max_example_tokens``, then the prompt to :attr:`max_prompt_tokens`
        (None: cannot fit); logs how many were cut.

        A tokenizer that cannot count tokens (a test double) leaves the prompts as they are.
        """
        if not callable(self.tokenizer) or not prompts:
            return list(prompts)
        cap = self.config.max_example_tokens
        if cap is not None:
            capped = [cap_examples(self.spec, p, self.tokenizer, cap) for p in prompts]
            shortened = sum(c is not p for c, p in zip(capped, prompts))
            if shortened and not self._logged_example_cap:
                self.log(f"generator: {shortened} of {len(prompts)} prompts had in-context examples over "
                         f"generator.max_example_tokens ({cap} tokens), cut to it (logged once)")
                self._logged_example_cap = True
            prompts = capped
        limit = self.max_prompt_tokens
        lengths = count_tokens(self.tokenizer, [self.render(p.text) for p in prompts])
        fitted: list[Prompt | None] = [
            p if n <= limit else fit_prompt(self.spec, p, self.tokenizer, self.render, limit)
            for p, n in zip(prompts, lengths)
        ]
        long = sum(n > limit for n in lengths)
        if long:
            lost = sum(f is None for f in fitted)
            self.log(f"generator: {long} of {len(prompts)} prompts exceeded {limit} tokens (max_model_len "
                     f"{self.config.max_model_len} - max_new_tokens {self.config.max_new_tokens}); in-context "
                     f"examples were truncated" + (f", {lost} could not fit and were dropped ({PROMPT_TOO_LONG})"
                                                   if lost else ""))
        return fitted

    def generate(
        self, pool: TextDataset, num_prompts: int, *, samples_per_prompt: int | None = None, known: Iterable[str] = (),
        round_index: int | None = None, embeddings: np.ndarray | None = None, seed: int | None = None,
        adapter: str | None | bool = True,
    ) -> list[Candidate]:
        """``num_prompts`` x ``samples_per_prompt`` candidates (kept and dropped), prompt-major.

        Candidate ``group * samples_per_prompt + sample`` is sample ``sample`` of prompt
        ``group``; the samples of one prompt come from one request and share its text and
        token ids exactly. ``samples_per_prompt`` defaults to ``generator.samples_per_prompt``.
        ``known``: duplicate-check keys of R ∪ S ∪ L (:func:`pool_keys`); the pool itself is
        always included. ``embeddings``: per pool row, for ``diverse_in_context`` (default:
        TF-IDF). ``adapter``: True = the current adapter, None = the base model, or a name.
        A prompt that cannot fit the context or that the backend refuses gives dropped
        candidates without tokens (:attr:`Candidate.generated` is False), not an error.
        """
        n = self.config.samples_per_prompt if samples_per_prompt is None else samples_per_prompt
        if n < 1:
            raise ValueError(f"samples_per_prompt must be positive, got {n}")
        if seed is None:
            seed = self.seed * 1_000_003 + (round_index or 0)
        rng = np.random.default_rng(seed)
        clusters = None
        if self.config.diverse_in_context:
            vectors = embeddings if embeddings is not None else _pool_embeddings(pool)
            clusters = cluster_assignments(vectors, self.config.num_in_context, seed=seed)
        drawn = make_prompts(self.spec, pool, num_prompts, self.config.num_in_context, rng,
                             label_conditioned=self.config.label_conditioned, clusters=clusters)
        fitted = self.fit_prompts(drawn)
        sent = [i for i, p in enumerate(fitted) if p is not None]  # prompt indices, in request order
        texts = {i: self.render(fitted[i].text) for i in sent}
        served = self.adapter if adapter is True else (adapter or None)
        params = self.sampling(seed, n)
        results = self.backend.generate([texts[i] for i in sent], params, served) if sent else []
        if len(results) != len(sent) * n:
            raise RuntimeError(f"backend {self.backend.name} returned {len(results)} completions for "
                               f"{len(sent)} prompts x {n} samples")

        candidates: list[Candidate] = []
        common = dict(adapter=served, round=round_index)
        for group, prompt in enumerate(drawn):
            if fitted[group] is None:  # nothing was sent: the same reason for each of its samples
                candidates += [Candidate(prompt=prompt.text, prompt_text=self.render(prompt.text), prompt_token_ids=[],
                                         completion_token_ids=[], raw_output="", text=None,
                                         drop_reason=PROMPT_TOO_LONG, label=prompt.label,
                                         example_ids=list(prompt.example_ids), group=group, sample=j, **common)
                               for j in range(n)]
                continue
            position = sent.index(group)
            for j, completion in enumerate(results[position * n:(position + 1) * n]):
                candidates.append(Candidate(
                    prompt=fitted[group].text, prompt_text=texts[group],
                    prompt_token_ids=list(completion.prompt_token_ids),
                    completion_token_ids=list(completion.token_ids), raw_output=completion.text, text=None,
                    drop_reason=REQUEST_REJECTED if completion.error else None, label=prompt.label,
                    example_ids=list(prompt.example_ids), seed=seed + position * n + j,  # vLLM's seed of the sample
                    finish_reason=completion.finish_reason, logprobs=completion.logprobs, group=group, sample=j,
                    **common,
                ))
        refused = [c for c in candidates if c.drop_reason == REQUEST_REJECTED]
        if refused:
            error = next(r.error for r in results if r.error)
            self.log(f"generator: the backend refused {len(refused) // n} of {len(sent)} prompts "
                     f"({REQUEST_REJECTED}): {error}")
        self._clean(candidates, pool, known)
        return candidates

    def _clean(self, candidates: list[Candidate], pool: TextDataset, known: Iterable[str]) -> None:
        """Clean the generated outputs and drop duplicates of R ∪ S ∪ L and of each other, in place."""
        prefix = self.config.response_prefix
        todo = [c for c in candidates if c.drop_reason is None]
        cleaned = [clean_output(prefix + c.raw_output, is_pair=self.spec.is_pair, rules=self.rules,
                                truncated=c.finish_reason == "length") for c in todo]
        dedup = Deduplicator([*pool_keys(pool), *known], threshold=self.config.near_duplicate_threshold)
        duplicates = dedup.filter([None if r.drop_reason else dedup_key(r.text or "", r.text_pair) for r in cleaned])
        for candidate, result, duplicate in zip(todo, cleaned, duplicates):
            candidate.drop_reason = result.drop_reason or duplicate
            if candidate.drop_reason is None:
                candidate.text, candidate.text_pair = result.text, result.text_pair


def generate_kept(
    generator: CandidateGenerator, pool: TextDataset, num: int, *, known: Iterable[str] = (), seed: int = 0,
    max_attempts: int = 5, **kwargs: Any,
) -> tuple[list[Candidate], list[Candidate]]:
    """(kept, all) after asking again for what cleaning dropped, until ``num`` are kept or attempts run out.

    With several samples per prompt, each attempt asks for enough prompts to cover what is missing.
    """
    known = list(known)
    samples = kwargs.get("samples_per_prompt") or generator.config.samples_per_prompt
    kept: list[Candidate] = []
    every: list[Candidate] = []
    for attempt in range(max_attempts):
        missing = num - len(kept)
        if missing <= 0:
            break
        ask = missing if attempt == 0 else max(missing + 2, int(missing * 1.5))
        batch = generator.generate(pool, math.ceil(ask / samples), known=known, seed=seed + attempt * 100_003,
                                   **kwargs)
        every += batch
        fresh = [c for c in batch if c.kept][:missing]
        kept += fresh
        known += [dedup_key(c.text or "", c.text_pair) for c in fresh]
    return kept, every


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def create_generator(config: GeneratorConfig, spec: TaskSpec, *, seed: int = 0, device: str = "cpu",
                     backend: GenerationBackend | None = None,
                     log: Callable[[str], None] = print) -> CandidateGenerator:
    """A CandidateGenerator for ``config`` (the backend is built unless given)."""
    from signal_al.assets.registry import resolve_model
    from signal_al.generation.backends import make_backend

    model = resolve_model(config.model)
    backend = backend or make_backend(config, model=model, device=device)
    tokenizer = getattr(backend, "tokenizer", None) or load_tokenizer(model)
    return CandidateGenerator(config, spec, backend, tokenizer, seed=seed, log=log)
