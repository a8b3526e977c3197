"""The transformers fallback backend with the real offline generator and a peft adapter (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import random_lora, ready_asset

from signal_al.config import DataConfig, GeneratorConfig
from signal_al.data import load_task, real_pool
from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.hf import TransformersBackend
from signal_al.generation.generator import create_generator

pytestmark = pytest.mark.slow

GENERATOR = "smollm2-135m-instruct"



@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return TransformersBackend(str(ready_asset(GENERATOR)), dtype="bfloat16")


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
