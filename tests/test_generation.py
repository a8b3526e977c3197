"""Prompts, cleaning, deduplication and candidate records (fast, no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from signal_al.config import GeneratorConfig
from signal_al.data.task import TaskSpec, TextDataset
from signal_al.generation import cleaning
from signal_al.generation.backends.base import Completion, GenerationBackend, SamplingParams
from signal_al.generation.cleaning import Deduplicator, clean_output, dedup_key, normalize
from signal_al.generation.generator import CandidateGenerator, generate_kept, pool_keys
from signal_al.generation.prompts import Prompt, build_prompt, cap_examples, cluster_assignments, make_prompts
from signal_al.generation.records import Candidate, read_jsonl, write_jsonl

MOVIES = TaskSpec("rt-movies", ("negative", "positive"), "movie reviews")
PAIRS = TaskSpec("qnli", ("entailment", "not_entailment"), "question and answer-sentence pairs", is_pair=True)


def movie_pool() -> TextDataset:
    texts = [
        "A gorgeous, witty, seductive movie.",
        "The plot is nothing but boilerplate cliches from start to finish.",
        "An utterly charming and hilarious film that reminds us of our childhood.",
        "It's a lousy one at that, and the acting is worse.",
        "Steers turns in a snappy screenplay that curls at the edges.",
        "Too slow, too long and too little happens.",
    ]
    return TextDataset(texts, np.array([1, 0, 1, 0, 1, 0]), ids=[f"r{i}" for i in range(6)])


# --- prompts ------------------------------------------------------------------------------------


def test_paper_prompt_layout() -> None:
    prompt = build_prompt(MOVIES, ["Great fun.", "Dull."])
    assert prompt.splitlines() == [
        "Based on the following examples of movie reviews, come up with a new example:",
        "Example 1: Great fun.",
        "Example 2: Dull.",
        "New Example:",
    ]


def test_make_prompts_draws_distinct_pool_examples() -> None:
    pool = movie_pool()
    prompts = make_prompts(MOVIES, pool, 5, 3, np.random.default_rng(0))
    assert len(prompts) == 5
    for prompt in prompts:
        assert len(set(prompt.example_ids)) == 3 and prompt.label is None
        for row_id in prompt.example_ids:
            assert pool.texts[pool.ids.index(row_id)] in prompt.text
    again = make_prompts(MOVIES, pool, 5, 3, np.random.default_rng(0))
    assert [p.text for p in again] == [p.text for p in prompts]


def test_label_conditioned_prompts_show_only_their_label() -> None:
    pool = movie_pool()
    prompts = make_prompts(MOVIES, pool, 4, 2, np.random.default_rng(1), label_conditioned=True)
    assert sorted(p.label for p in prompts) == [0, 0, 1, 1]
    for prompt in prompts:
        name = MOVIES.label_names[prompt.label]
        assert prompt.text.startswith(f'Based on the following examples of movie reviews, come up with a new example '
                                      f'whose label is "{name}":')
        assert all(pool.labels[pool.ids.index(i)] == prompt.label for i in prompt.example_ids)


def test_cluster_diverse_prompts_take_one_example_per_cluster() -> None:
    pool = movie_pool()
    embeddings = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1], [9, 0], [9, 0.1]], dtype=float)
    clusters = cluster_assignments(embeddings, 3, seed=0)
    assert len(set(clusters.tolist())) == 3
    for prompt in make_prompts(MOVIES, pool, 6, 3, np.random.default_rng(2), clusters=clusters):
        rows = [pool.ids.index(i) for i in prompt.example_ids]
        assert len({int(clusters[r]) for r in rows}) == 3


def test_pair_prompts_show_both_fields() -> None:
    pool = TextDataset(["Who wrote Hamlet?"], np.array([0]), text_pairs=["Hamlet is a play by Shakespeare."])
    prompt = make_prompts(PAIRS, pool, 1, 1, np.random.default_rng(0))[0]
    assert "Example 1: Text 1: Who wrote Hamlet? Text 2: Hamlet is a play by Shakespeare." in prompt.text


# --- cleaning -----------------------------------------------------------------------------------

# Real SmolLM2-135M-Instruct outputs for rt-movies prompts, and what must be kept.
REAL_OUTPUTS = [
    ("The Greatest Adventure Ever Told is a joyless slog.", "The Greatest Adventure Ever Told is a joyless slog."),
    ('"A warm and funny film that never forgets its heart."', "A warm and funny film that never forgets its heart."),
    ("New Example: The cast is terrific, but the script lets them down.",
     "The cast is terrific, but the script lets them down."),
    ("Sure! Here's a new example of a movie review:\n\n\"An overlong, joyless mess.\"\n\nThis review is negative "
     "because it criticizes the length.", "An overlong, joyless mess."),
    ("Here are a few more examples of new information:\n\nExample 1: While Howard's film is sincere, it drags.",
     "While Howard's film is sincere, it drags."),
    ("**New Example 4:** A sharp, funny satire with a real bite.", "A sharp, funny satire with a real bite."),
    ("1. Unchained: The movie has a sweet idea but does something despicable.",
     "Unchained: The movie has a sweet idea but does something despicable."),
    ("Example 4: \u201cSmart and sad, this one lingers.\u201d (positive)", "Smart and sad, this one lingers."),
]


@pytest.mark.parametrize("raw, expected", REAL_OUTPUTS)
def test_clean_output_keeps_only_the_example(raw: str, expected: str) -> None:
    result = clean_output(raw)
    assert result.drop_reason is None
    assert result.text == expected


def test_truncated_output_is_cut_to_its_last_sentence() -> None:
    raw = "A tender film about grief. It never quite finds its footing in the third act and the"
    assert clean_output(raw, truncated=True).text == "A tender film about grief."
    assert clean_output("and so the movie goes on and on without", truncated=True).drop_reason == cleaning.TRUNCATED
    # A finished first line is not cut even when later lines hit the limit.
    assert clean_output("Lovely and moving\nThis review is", truncated=True).text == "Lovely and moving"


@pytest.mark.parametrize("raw, reason", [
    ("", cleaning.EMPTY), ("   \n ", cleaning.EMPTY), ('""', cleaning.EMPTY), ("New Example:", cleaning.EMPTY),
    ("Great.", cleaning.TOO_SHORT), ("word " * 81, cleaning.TOO_LONG),
])
def test_clean_output_drop_reasons(raw: str, reason: str) -> None:
    assert clean_output(raw).drop_reason == reason
    assert clean_output(raw).text is None


META_OUTPUTS = [  # SmolLM2-135M outputs from an rt-movies SIGnAL run
    "In this example, Sentence 1 serves as an example of Sentence 2 with a sentence as an example of Sentence 3.",
    "I'm glad I could provide a fresh perspective on my previous example.",
    "Each example showcases different aspects of hospitality and compassion.",
    "Statement 1: I have more fun exploring and a poor joke is the most fertile soil.",
    "When looking at movie reviews, the examples given demonstrate a pattern of limited ambition.",
]


@pytest.mark.parametrize("raw", META_OUTPUTS)
def test_meta_commentary_is_dropped_only_when_asked(raw: str) -> None:
    assert clean_output(raw).drop_reason is None
    dropped = clean_output(raw, rules=cleaning.CleaningRules(drop_meta_commentary=True))
    assert (dropped.text, dropped.drop_reason) == (None, cleaning.META_COMMENTARY)


def test_meta_commentary_filter_keeps_almost_all_real_texts() -> None:
    from signal_al.config import DataConfig
    from signal_al.data import load_task

    rules = cleaning.CleaningRules(drop_meta_commentary=True, min_words=1, max_words=10_000)
    for task in ("rt-movies", "vader-sources"):
        texts = load_task(DataConfig(task=task)).train.texts
        dropped = sum(clean_output(text, rules=rules).drop_reason == cleaning.META_COMMENTARY for text in texts)
        assert 0 < dropped / len(texts) < 0.01, (task, dropped, len(texts))
    for text in movie_pool().texts:
        assert clean_output(text, rules=rules).drop_reason is None


def test_clean_pair_output_needs_both_fields() -> None:
    good = clean_output('New Example: Text 1: "Who painted the Mona Lisa?" Text 2: Leonardo painted it.', is_pair=True)
    assert (good.text, good.text_pair) == ("Who painted the Mona Lisa?", "Leonardo painted it.")
    two_lines = clean_output("Text 1: Where is Paris?\nText 2: Paris is in France.\nThis pair entails.", is_pair=True)
    assert (two_lines.text, two_lines.text_pair) == ("Where is Paris?", "Paris is in France.")
    assert clean_output("Text 1: Where is Paris?", is_pair=True).drop_reason == cleaning.MISSING_PAIR_FIELD


def test_normalize_ignores_case_punctuation_and_spacing() -> None:
    assert normalize("  A GOOD, good   film!! ") == normalize("a good good film") == "a good good film"
    assert normalize("Café") == "cafe"


def test_deduplicator_drops_exact_near_and_batch_duplicates() -> None:
    pool = movie_pool()
    dedup = Deduplicator(pool.texts, threshold=0.9)
    reasons = dedup.filter([
        "a gorgeous witty seductive MOVIE",  # exact after normalisation
        "The plot is nothing but boilerplate cliches from start to the finish.",  # near
        "A brand new film about two sisters on a road trip.",  # new
        "A brand new film about two sisters on a road trip!",  # same as the one before
        None,  # already dropped by cleaning
        "Nothing works in this tired, unfunny sequel.",  # new
    ])
    assert reasons == [cleaning.DUPLICATE, cleaning.NEAR_DUPLICATE, None, cleaning.DUPLICATE_IN_BATCH, None, None]
    # Kept candidates are remembered for later batches.
    assert dedup.filter(["Nothing works in this tired unfunny sequel"]) == [cleaning.DUPLICATE]


def test_pair_dedup_keys_include_both_fields() -> None:
    assert dedup_key("Q?", "A.") != dedup_key("Q?", "B.")
    pool = TextDataset(["Q one?"], np.array([0]), text_pairs=["Answer one."])
    assert pool_keys(pool) == ["q one || answer one"]


# --- generator with a scripted backend ----------------------------------------------------------


class ScriptedBackend(GenerationBackend):
    """Returns canned outputs in order, with fake token ids; records what it was asked."""

    name = "scripted"

    def __init__(self, outputs: Sequence[str], reject: str = "") -> None:
        self.outputs = list(outputs)
        self.reject = reject  # prompts containing this text are refused, as a server's 400
        self.calls: list[tuple[list[str], SamplingParams, str | None]] = []
        self.adapters: dict[str, str] = {}

    def generate(self, prompts, params, adapter=None):
        """params.n completions per prompt, prompt-major; "" (dropped as empty) once the script runs out."""
        self.calls.append((list(prompts), params, adapter))
        out = []
        for i, prompt in enumerate(prompts):
            for _ in range(params.n):
                text = self.outputs.pop(0) if self.outputs else ""
                if self.reject and self.reject in prompt:
                    out.append(Completion("", [], [], None, error="400: maximum context length"))
                else:
                    out.append(Completion(text, [7, 8, 2], [1, 2, 3, i], "stop"))
        return out

    def load_adapter(self, name, path):
        self.adapters[name] = str(path)


class NoTemplate:
    chat_template = None


class TagTemplate:
    """A chat template that wraps the user turn in tags and opens the assistant turn."""

    chat_template = "tags"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return f"<user>{messages[0]['content']}</user><assistant>"


def test_generator_records_every_candidate_with_provenance(tmp_path: Path) -> None:
    pool = movie_pool()
    backend = ScriptedBackend(["New Example: A bold and beautiful debut.", "", pool.texts[0],
                               '"A bold and beautiful debut!"'])
    config = GeneratorConfig(num_in_context=2, max_new_tokens=32, temperature=0.7, top_p=0.9)
    generator = CandidateGenerator(config, MOVIES, backend, NoTemplate(), seed=3)
    name = generator.load_adapter(tmp_path, round_index=2)
    assert name.startswith("round-2-") and len(name) > len("round-2-")  # unique to the adapter's content
    candidates = generator.generate(pool, 4, round_index=2)
    prompts, params, adapter = backend.calls[0]
    assert adapter == name and len(prompts) == 4
    # generator.logprobs is on by default: D_RL carries the served log-probs (served = trained)
    assert params == SamplingParams(max_tokens=32, temperature=0.7, top_p=0.9, seed=params.seed, logprobs=True)
    expected = [None, cleaning.EMPTY, cleaning.DUPLICATE, cleaning.DUPLICATE_IN_BATCH]
    assert [c.drop_reason for c in candidates] == expected
    first = candidates[0]
    assert first.kept and first.text == "A bold and beautiful debut."
    assert first.raw_output == "New Example: A bold and beautiful debut."
    assert (first.prompt_token_ids, first.completion_token_ids) == ([1, 2, 3, 0], [7, 8, 2])
    assert first.prompt == first.prompt_text and first.prompt.endswith("New Example:")
    assert (first.adapter, first.round, len(first.example_ids)) == (name, 2, 2)
    write_jsonl(candidates, tmp_path / "log.jsonl")
    assert read_jsonl(tmp_path / "log.jsonl") == candidates
    # adapter=None asks the base model.
    generator.generate(pool, 1, adapter=None)
    assert backend.calls[-1][2] is None


def test_response_prefix_and_plain_prompts_reach_the_backend_and_cleaning() -> None:
    pool = movie_pool()
    backend = ScriptedBackend([" A bold and beautiful debut.", ' Sure! "A quiet, moving film." Hope it helps',
                               "In this example, Sentence 1 shows the tone."])
    config = GeneratorConfig(num_in_context=2, response_prefix="New Example:", drop_meta_commentary=True)
    candidates = CandidateGenerator(config, MOVIES, backend, TagTemplate(), seed=3).generate(pool, 3)
    prompts = backend.calls[0][0]
    assert all(prompt.endswith("New Example:</user><assistant>New Example:") for prompt in prompts)
    assert [c.prompt_text for c in candidates] == prompts  # what the model saw, the prefill included
    assert [c.raw_output for c in candidates] == [" A bold and beautiful debut.", ' Sure! "A quiet, moving film." '
                                                  "Hope it helps", "In this example, Sentence 1 shows the tone."]
    assert [c.text for c in candidates] == ["A bold and beautiful debut.", "A quiet, moving film.", None]
    assert candidates[2].drop_reason == cleaning.META_COMMENTARY
    quoted = ScriptedBackend(['The film drags." Hope it helps'])
    config = GeneratorConfig(num_in_context=1, response_prefix='"')
    (candidate,) = CandidateGenerator(config, MOVIES, quoted, TagTemplate()).generate(pool, 1)
    assert quoted.calls[0][0][0].endswith('<assistant>"') and candidate.text == "The film drags."
    plain = ScriptedBackend([" A film for the ages."])
    config = GeneratorConfig(num_in_context=1, chat_template=False)
    (candidate,) = CandidateGenerator(config, MOVIES, plain, TagTemplate()).generate(pool, 1)
    assert plain.calls[0][0] == [candidate.prompt] and candidate.prompt.endswith("\nNew Example:")
    assert "<user>" not in candidate.prompt_text and candidate.text == "A film for the ages."


def test_generate_kept_asks_again_for_dropped_candidates() -> None:
    backend = ScriptedBackend(["Fine film, really fine.", "", "x", "Another solid, decent picture.",
                               "A third movie worth seeing.", "spare one here"])
    generator = CandidateGenerator(GeneratorConfig(num_in_context=1), MOVIES, backend, NoTemplate())
    kept, every = generate_kept(generator, movie_pool(), 3)
    assert [c.text for c in kept] == ["Fine film, really fine.", "Another solid, decent picture.",
                                      "A third movie worth seeing."]
    assert len(every) == 7 and len(backend.calls) == 2  # asked for 4 more, the script had 3 (+1 empty)


def test_candidate_round_trips_through_dict() -> None:
    candidate = Candidate("p", "p", [1], [2], "raw", "text", drop_reason=None, adapter="round-1", round=1)
    assert Candidate.from_dict(candidate.to_dict()) == candidate


# --- several samples per prompt -----------------------------------------------------------------


def test_samples_of_one_prompt_come_from_one_request_and_share_it() -> None:
    pool = movie_pool()
    outputs = [f"A distinct review number {word} about a film." for word in "one two three four five six".split()]
    backend = ScriptedBackend(outputs)
    config = GeneratorConfig(num_in_context=2, samples_per_prompt=3)
    candidates = CandidateGenerator(config, MOVIES, backend, TagTemplate(), seed=1).generate(pool, 2, seed=100)
    prompts, params, _ = backend.calls[0]
    assert len(backend.calls) == 1 and len(prompts) == 2 and params.n == 3  # one request per prompt, n samples
    assert [(c.group, c.sample) for c in candidates] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [c.raw_output for c in candidates] == outputs  # prompt-major, in the backend's order
    for group in (0, 1):
        members = candidates[3 * group: 3 * group + 3]
        assert {c.prompt_text for c in members} == {prompts[group]}
        assert all(c.prompt_token_ids == [1, 2, 3, group] and c.example_ids == members[0].example_ids
                   for c in members)
    assert candidates[0].prompt_text != candidates[3].prompt_text
    # Request i is seeded 100 + 3 i and vLLM seeds its sample j with that + j: every sample its own seed.
    assert [c.seed for c in candidates] == [100, 101, 102, 103, 104, 105]
    assert all(c.kept for c in candidates)
    # The argument overrides the config; one sample per prompt is the paper's setting.
    single = CandidateGenerator(config, MOVIES, ScriptedBackend(outputs), TagTemplate()).generate(
        pool, 2, samples_per_prompt=1)
    assert [(c.group, c.sample) for c in single] == [(0, 0), (1, 0)]


def test_identical_samples_of_a_prompt_are_dropped_as_batch_duplicates() -> None:
    backend = ScriptedBackend(["The same review, word for word."] * 2 + ["Something else entirely here."])
    config = GeneratorConfig(num_in_context=1, samples_per_prompt=3)
    candidates = CandidateGenerator(config, MOVIES, backend, NoTemplate()).generate(movie_pool(), 1)
    assert [c.drop_reason for c in candidates] == [None, cleaning.DUPLICATE_IN_BATCH, None]


def test_generate_kept_asks_for_enough_prompts_with_several_samples() -> None:
    good = [f"Review number {w} of the year." for w in "one two three four five six".split()]
    backend = ScriptedBackend([good[0], "", *good[1:4], "x", *good[4:]])
    generator = CandidateGenerator(GeneratorConfig(num_in_context=1, samples_per_prompt=2), MOVIES, backend,
                                   NoTemplate())
    kept, every = generate_kept(generator, movie_pool(), 5)
    # ceil(5 / 2) = 3 prompts keep 4; the one missing is asked again as 3 candidates = 2 prompts.
    assert [len(call[0]) for call in backend.calls] == [3, 2]
    assert [c.text for c in kept] == good[:5] and len(every) == 10


def test_candidate_groups_persist_and_old_rows_still_load(tmp_path: Path) -> None:
    candidate = Candidate("p", "p", [1], [2], "raw", "text", round=1, group=4, sample=2)
    assert Candidate.from_dict(candidate.to_dict()) == candidate
    write_jsonl([candidate], tmp_path / "log.jsonl")
    assert read_jsonl(tmp_path / "log.jsonl")[0].group == 4
    old = candidate.to_dict()
    del old["group"], old["sample"]
    loaded = Candidate.from_dict(old)
    assert (loaded.group, loaded.sample, loaded.text) == (None, 0, "text")


def test_prompts_per_round_and_samples_per_prompt_config() -> None:
    from signal_al.core.errors import UserError

    assert GeneratorConfig().prompts_for_round(40) == 40  # default: the round's budget
    assert GeneratorConfig(candidates_per_round=32).prompts_for_round(40) == 32
    assert GeneratorConfig(candidates_per_round=32, prompts_per_round=8).prompts_for_round(40) == 8
    assert GeneratorConfig().samples_per_prompt == 1
    with pytest.raises(UserError, match="generator.samples_per_prompt"):
        GeneratorConfig(samples_per_prompt=0)
    with pytest.raises(UserError, match="generator.prompts_per_round"):
        GeneratorConfig(prompts_per_round=0)
    with pytest.raises(UserError, match="generator.max_new_tokens"):
        GeneratorConfig(max_new_tokens=1024, max_model_len=1024)


# --- dtype --------------------------------------------------------------------------------------


def test_auto_dtype_follows_native_bf16_support(monkeypatch: pytest.MonkeyPatch) -> None:
    from signal_al.generation import dtypes as dtype

    monkeypatch.setattr(dtype, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(dtype, "cuda_has_bf16", lambda: True)
    assert dtype.resolve_generator_dtype("auto", "cpu") == "float32"  # emulated bf16 is slower than fp32
    assert dtype.resolve_generator_dtype("auto", "cuda:0") == "bfloat16"
    monkeypatch.setattr(dtype, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dtype, "cuda_has_bf16", lambda: False)
    assert dtype.resolve_generator_dtype("auto", "cpu") == "bfloat16"
    assert dtype.resolve_generator_dtype("auto", "cuda") == "float16"  # pre-Ampere GPUs
    for explicit in ("bfloat16", "float16", "float32"):
        assert dtype.resolve_generator_dtype(explicit, "cpu") == explicit
    with pytest.raises(ValueError, match="unknown generator dtype"):
        dtype.resolve_generator_dtype("int8", "cpu")
    assert GeneratorConfig().dtype == "auto"


def test_cpu_bf16_probe_reads_torch_features_then_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from signal_al.generation import dtypes as dtype

    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx2": True, "avx512_bf16": True,
                                                                        "amx_bf16": False})
    assert not dtype.cpu_has_native_bf16()  # AVX512-BF16 alone: the vLLM CPU server is faster in fp32
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx512_bf16": False, "amx_bf16": True})
    assert dtype.cpu_has_native_bf16()
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: "AVX2")  # older torch: no feature dict
    monkeypatch.setattr(dtype, "_cpuinfo_flags", lambda: {"avx2", "fma"})
    assert not dtype.cpu_has_native_bf16()
    monkeypatch.setattr(dtype, "_cpuinfo_flags", lambda: {"avx2", "avx512_bf16"})
    assert not dtype.cpu_has_native_bf16()
    monkeypatch.setattr(dtype, "_cpuinfo_flags", lambda: {"avx512_bf16", "amx_bf16", "amx_tile"})
    assert dtype.cpu_has_native_bf16()


def test_server_command_and_transformers_backend_use_the_resolved_dtype(
    monkeypatch: pytest.MonkeyPatch, tiny_generator_dir: Path,
) -> None:
    from signal_al.generation import dtypes as dtype
    from signal_al.generation.backends.hf import TransformersBackend
    from signal_al.generation.server.process import ServerSettings, server_command, settings_from_config

    monkeypatch.setattr(dtype, "cpu_has_native_bf16", lambda: False)
    command = server_command(ServerSettings(model="m"), "/py", cpu=True)
    assert command[command.index("--dtype") + 1] == "float32"
    settings = settings_from_config(GeneratorConfig(model=str(tiny_generator_dir), dtype="bfloat16"))
    command = server_command(settings, "/py", cpu=True)
    assert command[command.index("--dtype") + 1] == "bfloat16"  # an explicit dtype is kept
    backend = TransformersBackend(str(tiny_generator_dir), dtype="auto")
    assert backend.dtype == "float32" and next(backend.model.parameters()).dtype.is_floating_point
    assert str(next(backend.model.parameters()).dtype) == "torch.float32"
    monkeypatch.setattr(dtype, "cpu_has_native_bf16", lambda: True)
    assert str(next(TransformersBackend(str(tiny_generator_dir)).model.parameters()).dtype) == "torch.bfloat16"


# --- prompts that do not fit the context --------------------------------------------------------


class WordTokenizer:
    """One token per whitespace-separated word, callable and decodable like a transformers tokenizer."""

    chat_template = None

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self.index: dict[str, int] = {}

    def _ids(self, text: str) -> list[int]:
        for word in text.split():
            if word not in self.index:
                self.index[word] = len(self.vocab)
                self.vocab.append(word)
        return [self.index[word] for word in text.split()]

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": self._ids(texts) if isinstance(texts, str) else [self._ids(t) for t in texts]}

    def decode(self, ids):
        return " ".join(self.vocab[i] for i in ids)


def long_pool() -> TextDataset:
    texts = [" ".join(f"w{row}x{i}" for i in range(length)) for row, length in enumerate([400, 30, 900, 5])]
    return TextDataset(texts, np.array([0, 1, 0, 1]), ids=[f"l{i}" for i in range(4)])


def test_long_in_context_examples_are_cut_to_fit_the_context() -> None:
    pool = long_pool()
    tokenizer = WordTokenizer()
    config = GeneratorConfig(num_in_context=3, max_model_len=200, max_new_tokens=50, response_prefix="New Example:",
                             max_example_tokens=None)  # the context fit alone
    logged: list[str] = []
    words = "alpha bravo charlie delta echo foxtrot golf hotel".split()
    backend = ScriptedBackend([f"A fine {word} review is here." for word in words])
    generator = CandidateGenerator(config, MOVIES, backend, tokenizer, seed=0, log=logged.append)
    candidates = generator.generate(pool, 8)
    sent = backend.calls[0][0]
    assert len(sent) == 8 and all(len(tokenizer(text)["input_ids"]) <= 150 for text in sent)
    assert [c.prompt_text for c in candidates] == sent and all(c.kept for c in candidates)
    assert any(len(tokenizer(text)["input_ids"]) > 140 for text in sent)  # the room is used, not wasted
    for candidate in candidates:  # every drawn example is still shown; short ones (5, 30 words) stay whole
        assert len(candidate.example_ids) == 3 and candidate.prompt.count("\nExample ") == 3
        for short in ("l1", "l3"):
            if short in candidate.example_ids:
                assert pool.texts[int(short[1])] + "\n" in candidate.prompt
    assert len(logged) == 1 and "exceeded 150 tokens" in logged[0] and "truncated" in logged[0]
    short = CandidateGenerator(config, MOVIES, ScriptedBackend(["A fine film."]), tokenizer, log=logged.append)
    short.generate(movie_pool(), 1)
    assert len(logged) == 1  # prompts that fit are neither cut nor logged


def test_cap_examples_keeps_the_first_tokens_of_each_long_example() -> None:
    tokenizer, pool = WordTokenizer(), long_pool()
    prompt = make_prompts(MOVIES, pool, 1, 4, np.random.default_rng(0))[0]
    capped = cap_examples(MOVIES, prompt, tokenizer, 20)
    by_id = dict(zip(pool.ids, pool.texts))
    expected = [" ".join(by_id[i].split()[:20]) for i in prompt.example_ids]  # 400 and 900 words cut, 30 cut, 5 whole
    assert capped.examples == expected and capped.example_ids == prompt.example_ids
    assert capped.text == build_prompt(MOVIES, expected)
    assert cap_examples(MOVIES, capped, tokenizer, 20) is capped  # nothing over the cap: the same prompt
    pair = Prompt(build_prompt(PAIRS, [("q " * 3, "a " * 50)]), ["p0"], None, [("q " * 3, "a " * 50)])
    assert cap_examples(PAIRS, pair, tokenizer, 10).examples == [("q " * 3, " ".join(["a"] * 10))]  # each field
    with pytest.raises(ValueError, match="positive"):
        cap_examples(MOVIES, prompt, tokenizer, 0)


def test_generator_cuts_long_examples_to_max_example_tokens_by_default() -> None:
    pool = long_pool()  # examples of 400, 30, 900 and 5 words
    tokenizer = WordTokenizer()
    words = "alpha bravo charlie delta echo foxtrot golf hotel".split()
    sent_lengths = {}
    for cap in (128, 16, None):
        logged: list[str] = []
        config = GeneratorConfig(num_in_context=4, max_model_len=4096, max_new_tokens=50,
                                 **({} if cap == 128 else {"max_example_tokens": cap}))
        backend = ScriptedBackend([f"A fine {word} review is here." for word in words])
        generator = CandidateGenerator(config, MOVIES, backend, tokenizer, seed=0, log=logged.append)
        candidates = generator.generate(pool, 2) + generator.generate(pool, 2, round_index=1)
        limit = 10**6 if cap is None else cap
        for candidate in candidates:
            shown = [line.split(": ", 1)[1] for line in candidate.prompt.splitlines() if line.startswith("Example ")]
            full = [pool.texts[pool.ids.index(i)] for i in candidate.example_ids]
            assert shown == [" ".join(text.split()[:limit]) for text in full]
        sent_lengths[cap] = sum(len(tokenizer(t)["input_ids"]) for t in backend.calls[0][0])
        if cap is None:
            assert logged == []
        else:  # every prompt holds the 400- or 900-word text: cut, and said once per generator
            assert len(logged) == 1 and f"max_example_tokens ({cap} tokens)" in logged[0]
    assert sent_lengths[16] < sent_lengths[128] < sent_lengths[None]
    with pytest.raises(Exception, match="generator.max_example_tokens"):
        GeneratorConfig(max_example_tokens=0)


def test_a_prompt_that_cannot_fit_or_is_refused_is_dropped_not_fatal() -> None:
    pool = movie_pool()
    logged: list[str] = []
    # The instruction alone is longer than the room: nothing is sent, every candidate says why.
    config = GeneratorConfig(num_in_context=2, max_model_len=10, max_new_tokens=5, samples_per_prompt=2)
    backend = ScriptedBackend(["never used"])
    candidates = CandidateGenerator(config, MOVIES, backend, WordTokenizer(), log=logged.append).generate(pool, 2)
    assert backend.calls == [] and len(candidates) == 4
    assert {c.drop_reason for c in candidates} == {cleaning.PROMPT_TOO_LONG}
    assert not any(c.generated for c in candidates) and [c.group for c in candidates] == [0, 0, 1, 1]
    assert "could not fit" in logged[-1]
    # A prompt the backend refuses (a server 400) drops its samples; the others are generated.
    config = GeneratorConfig(num_in_context=1, samples_per_prompt=2)
    backend = ScriptedBackend([f"A good {w} review of a film." for w in "ab cd ef gh ij kl mn op qr st uv wx".split()],
                              reject="seductive")
    generator = CandidateGenerator(config, MOVIES, backend, NoTemplate(), log=logged.append)
    candidates = generator.generate(pool, 6, seed=5)
    refused = [c for c in candidates if c.drop_reason == cleaning.REQUEST_REJECTED]
    assert refused and len(refused) < len(candidates) and len(refused) % 2 == 0
    assert all(pool.texts[0] in c.prompt and not c.generated and c.completion_token_ids == [] for c in refused)
    assert all(c.kept and c.generated for c in candidates if c not in refused)
    assert "refused" in logged[-1] and "maximum context length" in logged[-1]


def test_cap_examples_with_the_real_tokenizer_keeps_a_prefix_within_the_cap() -> None:
    """Decoding the first N tokens and encoding again must not grow past N (byte-level BPE merges)."""
    from transformers import AutoTokenizer

    from helpers import ready_asset

    tokenizer = AutoTokenizer.from_pretrained(ready_asset("smollm2-135m-instruct"))
    long = ("An overlong, meandering three-hour epic -- with café scenes, naïve heroes and 1,000 extras -- "
            "that never earns its ending! ") * 12
    pool = TextDataset([long, "Short and sweet.", long[::-1]], np.array([1, 1, 0]), ids=["a", "b", "c"])
    prompt = make_prompts(MOVIES, pool, 1, 3, np.random.default_rng(1))[0]
    for cap in (1, 7, 50, 128):
        capped = cap_examples(MOVIES, prompt, tokenizer, cap)
        for original, shown in zip(prompt.examples, capped.examples):
            assert original.lstrip().startswith(shown)  # the cut text is stripped of edge spaces
            assert len(tokenizer(shown, add_special_tokens=False)["input_ids"]) <= cap
            if len(tokenizer(original, add_special_tokens=False)["input_ids"]) <= cap:
                assert shown == original
