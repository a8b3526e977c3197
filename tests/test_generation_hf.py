"""The transformers fallback backend: samples per prompt with a tiny model (fast), the real offline
generator and a peft adapter (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import random_lora, ready_asset

from signal_al.config import DataConfig, GeneratorConfig
from signal_al.data import load_task, real_pool
from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.hf import TransformersBackend
from signal_al.generation.generator import create_generator

GENERATOR = "smollm2-135m-instruct"


def test_n_samples_per_prompt_with_num_return_sequences(tiny_generator_dir: Path) -> None:
    backend = TransformersBackend(str(tiny_generator_dir), dtype="float32", batch_size=4)
    prompts = ["write a new movie review", "the film was"]
    params = SamplingParams(max_tokens=8, temperature=1.0, seed=3, n=3, ignore_eos=True)
    completions = backend.generate(prompts, params)
    assert len(completions) == 6
    ids = [backend.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert [c.prompt_token_ids for c in completions] == [ids[0]] * 3 + [ids[1]] * 3  # unpadded, prompt-major
    for group in (completions[:3], completions[3:]):
        assert len({tuple(c.token_ids) for c in group}) > 1  # sampled, not copies
    again = backend.generate(prompts, params)  # batch_size 4 < 6 sequences: one prompt per call
    assert [c.token_ids for c in again] == [c.token_ids for c in completions]
    greedy = backend.generate(prompts, SamplingParams(max_tokens=8, temperature=0.0, n=2, ignore_eos=True))
    assert len(greedy) == 4 and greedy[0].token_ids == greedy[1].token_ids




@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return TransformersBackend(str(ready_asset(GENERATOR)), dtype="bfloat16")


@pytest.mark.slow
def test_candidates_from_the_transformers_backend(backend: TransformersBackend) -> None:
    data_config = DataConfig(task="rt-movies")
    data = load_task(data_config)
    pool = real_pool(data, data_config, seed=0)
    config = GeneratorConfig(backend="transformers", max_new_tokens=24, temperature=0.8, top_p=0.95)
    generator = create_generator(config, data.spec, backend=backend)
    candidates = generator.generate(pool, 4, round_index=0)
    assert len(candidates) == 4
    tokenizer = backend.tokenizer
    for candidate in candidates:
        assert candidate.prompt_token_ids == tokenizer(candidate.prompt_text, add_special_tokens=False)["input_ids"]
        assert 0 < len(candidate.completion_token_ids) <= 24
        assert tokenizer.decode(candidate.completion_token_ids, skip_special_tokens=True) == candidate.raw_output
        assert candidate.finish_reason in ("stop", "length")
        if candidate.finish_reason == "stop":
            assert candidate.completion_token_ids[-1] == tokenizer.eos_token_id


@pytest.mark.slow
def test_adapter_changes_outputs_and_base_stays_the_base(backend: TransformersBackend, tmp_path: Path) -> None:
    prompts = ["<|im_start|>user\nName a film.<|im_end|>\n<|im_start|>assistant\n", "The best movie of the year is"]
    greedy = SamplingParams(max_tokens=12, temperature=0.0, logprobs=True)
    before = backend.generate(prompts, greedy)
    backend.load_adapter("round-1", random_lora(ready_asset(GENERATOR), tmp_path / "round-1"))
    tuned = backend.generate(prompts, greedy, adapter="round-1")
    after = backend.generate(prompts, greedy)
    assert [c.token_ids for c in tuned] != [c.token_ids for c in before]
    assert [c.token_ids for c in after] == [c.token_ids for c in before]
    assert all(len(c.logprobs) == len(c.token_ids) and max(c.logprobs) <= 0 for c in before)
