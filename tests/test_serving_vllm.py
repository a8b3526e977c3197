"""Integration: the real vLLM CPU server with the offline SmolLM2 generator (slow, runs in CI).

The server environment (the machine's one in the asset cache, from the shipped lock file) is
built on first use, which takes a few minutes once per machine; the server starts in about 30 s and is stopped after the
module, also when a test fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests
from helpers import random_lora, ready_asset

from signal_al.config import DataConfig, GeneratorConfig
from signal_al.core.errors import ServerError
from signal_al.data import load_task, real_pool
from signal_al.data.task import TextDataset
from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.server import VLLMServerBackend
from signal_al.generation.generator import create_generator
from signal_al.generation.server.access import free_port
from signal_al.generation.server.process import ServerSettings, VLLMServer
from signal_al.generation.server.venv import default_venv

pytestmark = pytest.mark.slow

GENERATOR = "smollm2-135m-instruct"



@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    venv = default_venv()  # $SIGNAL_AL_VLLM_VENV, else the machine's environment in the asset cache
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    settings = ServerSettings(model=str(ready_asset(GENERATOR)), port=free_port(), venv=venv, log_file=log)
    server = VLLMServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_lora(ready_asset(GENERATOR), tmp_path_factory.mktemp("lora") / "round-1")


@pytest.fixture(scope="module")
def rt_pool():
    config = DataConfig(task="rt-movies")
    data = load_task(config)
    return data.spec, real_pool(data, config, seed=0)


def test_generates_a_clean_rt_movies_batch_with_round_tripping_token_ids(server: VLLMServer, rt_pool) -> None:
    spec, pool = rt_pool
    config = GeneratorConfig(server_url=server.url, max_new_tokens=48, temperature=0.8, top_p=0.95)
    generator = create_generator(config, spec, seed=0)
    candidates = generator.generate(pool, 16, round_index=0)
    assert len(candidates) == 16
    tokenizer = generator.tokenizer
    for candidate in candidates:
        assert candidate.prompt_text.startswith("<|im_start|>") and "New Example:" in candidate.prompt_text
        assert candidate.prompt_token_ids == tokenizer(candidate.prompt_text, add_special_tokens=False)["input_ids"]
        assert 0 < len(candidate.completion_token_ids) <= 48
        assert tokenizer.decode(candidate.completion_token_ids, skip_special_tokens=True) == candidate.raw_output
        assert candidate.adapter is None and candidate.round == 0
    kept = [c for c in candidates if c.kept]
    assert len(kept) >= 8, [(c.raw_output, c.drop_reason) for c in candidates]
    assert all(c.text and "\n" not in c.text and not c.text.lower().startswith("new example") for c in kept)
    assert [c.seed for c in candidates] == list(range(candidates[0].seed, candidates[0].seed + 16))


def test_n_seeded_samples_differ_and_reproduce_and_long_prompts_fit(server: VLLMServer, fp32_server: VLLMServer,
                                                                    rt_pool) -> None:
    """vLLM's n with one seed: n different samples of one shared prompt, the same again on a rerun.

    The rerun is on the float32 server: the second request hits vLLM's prefix cache, whose kernels round
    differently, and bf16's ~1e-2 log-prob noise then flips sampled tokens (CI saw it: 1 of 8 samples
    differed from its 10th token). float32's ~1e-6 leaves a seeded draw where it was.
    """
    spec, pool = rt_pool
    backend = VLLMServerBackend(fp32_server.url)
    prompt = "<|im_start|>user\nWrite one sentence about a movie.<|im_end|>\n<|im_start|>assistant\n"
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7, n=4)
    first = backend.generate([prompt, prompt], params)
    again = backend.generate([prompt, prompt], params)
    assert len(first) == 8 and len({tuple(c.token_ids) for c in first}) == 8
    assert [c.token_ids for c in again] == [c.token_ids for c in first]
    assert len({tuple(c.prompt_token_ids) for c in first}) == 1
    # Through the generator, with in-context texts far longer than the server's context and no per-example cap:
    # every prompt is cut to fit, none is refused.
    long_pool = TextDataset([" ".join([text] * 200) for text in pool.texts[:4]], pool.labels[:4], ids=pool.ids[:4])
    logged: list[str] = []
    config = GeneratorConfig(server_url=server.url, max_new_tokens=16, samples_per_prompt=2, max_model_len=1024,
                             max_example_tokens=None)
    generator = create_generator(config, spec, seed=0, log=logged.append)
    candidates = generator.generate(long_pool, 3, seed=11)
    assert len(candidates) == 6 and all(c.generated for c in candidates), [c.drop_reason for c in candidates]
    assert all(len(c.prompt_token_ids) <= 1024 - 16 for c in candidates)
    assert any("truncated" in line for line in logged)
    assert [c.group for c in candidates] == [0, 0, 1, 1, 2, 2]
    assert candidates[0].prompt_token_ids == candidates[1].prompt_token_ids
    # With the default per-example cap (128 tokens) the same prompts are short enough that nothing is cut to fit.
    logged.clear()
    capped = create_generator(GeneratorConfig(server_url=server.url, max_new_tokens=16, samples_per_prompt=2,
                                              max_model_len=1024), spec, seed=0, log=logged.append)
    short = capped.generate(long_pool, 3, seed=11)
    assert all(c.generated for c in short) and not any("truncated" in line for line in logged)
    assert any("max_example_tokens (128 tokens)" in line for line in logged)
    assert max(len(c.prompt_token_ids) for c in short) < min(len(c.prompt_token_ids) for c in candidates)


def test_hot_loaded_lora_adapter_changes_the_outputs(server: VLLMServer, adapter: Path, rt_pool) -> None:
    spec, pool = rt_pool
    backend = VLLMServerBackend(server.url)
    backend.load_adapter("round-1", adapter)
    backend.load_adapter("round-1", adapter)  # the same name again (e.g. after a resume) is accepted
    assert "round-1" in backend.adapters()
    generator = create_generator(GeneratorConfig(server_url=server.url, max_new_tokens=24, temperature=0.0),
                                 spec, backend=backend)
    prompts = [f"Write one sentence about movie number {i}." for i in range(4)]
    params = SamplingParams(max_tokens=24, temperature=0.0, seed=0)
    base = backend.generate(prompts, params)
    tuned = backend.generate(prompts, params, adapter="round-1")
    assert [c.token_ids for c in base] != [c.token_ids for c in tuned]
    assert [c.prompt_token_ids for c in base] == [c.prompt_token_ids for c in tuned]
    # Through the generator: candidates record the adapter they came from.
    name = generator.load_adapter(adapter, round_index=1)
    assert name.startswith("round-1-")  # unique to the adapter's content
    assert all(c.adapter == name and c.round == 1 for c in generator.generate(pool, 2, round_index=1))


def test_a_bad_adapter_path_is_an_error_and_the_server_keeps_running(server: VLLMServer, tmp_path: Path) -> None:
    backend = VLLMServerBackend(server.url)
    fake = tmp_path / "not-an-adapter"
    fake.mkdir()
    (fake / "adapter_config.json").write_text("{}")
    with pytest.raises(ServerError, match="could not load adapter 'broken'"):
        backend.load_adapter("broken", fake)
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200


def test_cli_generate_prints_cleaned_candidates(server: VLLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.cli import main

    assert main(["generate", "--task", "rt-movies", "--n", "8", "--server-url", server.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(".", 1)[0].strip() for line in lines] == [str(i) for i in range(1, 9)]
    assert len(set(lines)) == 8 and all(len(line.split()) >= 4 for line in lines)


def test_transformers_and_server_agree_on_the_prompt_tokens(server: VLLMServer) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ready_asset(GENERATOR))
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Say hi."}], tokenize=False,
                                         add_generation_prompt=True)
    completion = VLLMServerBackend(server.url).generate([text], SamplingParams(max_tokens=4, seed=1))[0]
    assert completion.prompt_token_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert np.all(np.asarray(completion.token_ids) < len(tokenizer))


def test_ppo_trained_adapter_is_hot_loaded_by_the_server(server: VLLMServer, rt_pool, tmp_path: Path) -> None:
    """The whole generator cycle: server candidates -> D_RL -> our PPO update -> served adapter."""
    from signal_al.config import ExperimentConfig
    from signal_al.trainers.ppo_trainer import train_generator
    from signal_al.trainers.rollouts import Rollout

    spec, pool = rt_pool
    generator = create_generator(GeneratorConfig(server_url=server.url, max_new_tokens=24), spec, seed=1)
    candidates = generator.generate(pool, 8, round_index=0)
    rollouts = [Rollout(prompt_token_ids=c.prompt_token_ids, completion_token_ids=c.completion_token_ids,
                        reward=1.0 if len(c.completion_token_ids) < 12 else -1.0, prompt=c.prompt_text,
                        completion=c.raw_output) for c in candidates]
    ppo = ExperimentConfig().ppo
    ppo.num_ppo_epochs, ppo.per_device_train_batch_size, ppo.learning_rate = 1, 4, 5e-3
    out = tmp_path / "round-1"
    metrics = train_generator(ready_asset(GENERATOR), rollouts, out, ppo, cpu=True)
    assert np.isfinite(metrics["policy_loss"])
    backend = VLLMServerBackend(server.url)
    backend.load_adapter("ppo-round-1", out)
    assert "ppo-round-1" in backend.adapters()
    prompts = [c.prompt_text for c in candidates[:4]]
    params = SamplingParams(max_tokens=16, temperature=0.0, seed=0, logprobs=True)
    base = backend.generate(prompts, params)
    tuned = backend.generate(prompts, params, adapter="ppo-round-1")
    assert all(len(c.token_ids) > 0 for c in tuned)
    assert [c.logprobs for c in base] != [c.logprobs for c in tuned]


# --- served = trained ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fp32_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """A float32 server: the trainer's dtype on a CPU, so served and trained log-probs can agree to rounding."""
    log = tmp_path_factory.mktemp("vllm-fp32") / "server.log"
    settings = ServerSettings(model=str(ready_asset(GENERATOR)), port=free_port(), venv=default_venv(), log_file=log,
                              dtype="float32")
    server = VLLMServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


def _served_rollouts(url: str, prompts: list[str], adapter: str | None, temperature: float) -> list:
    from signal_al.trainers.rollouts import Rollout

    params = SamplingParams(max_tokens=24, temperature=temperature, seed=3, logprobs=True, n=2)
    samples = VLLMServerBackend(url).generate(prompts, params, adapter=adapter)
    return [Rollout(prompt_token_ids=c.prompt_token_ids, completion_token_ids=c.token_ids, reward=0.0,
                    logprobs=c.logprobs) for c in samples if c.token_ids]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_served_logprob_parity_between_the_vllm_server_and_the_trainer(
        fp32_server: VLLMServer, server: VLLMServer, adapter: Path, rt_pool, temperature: float) -> None:
    """vLLM's log-probs of the tokens it sampled (processed: after the temperature) equal the trainer's
    recomputation, for the base model and a hot-loaded adapter with large random weights; the check has
    power: the adapter's samples scored by the base model are far off. The default bf16 server on an AMX
    CPU is within bf16 rounding, which truncated importance sampling corrects."""
    from signal_al.generation.prompts import make_prompts
    from signal_al.trainers.ppo_config import PPOConfig
    from signal_al.trainers.ppo_trainer import PPOTrainer

    spec, pool = rt_pool
    generator = create_generator(GeneratorConfig(server_url=fp32_server.url), spec, seed=0)
    prompts = [generator.render(p.text) for p in make_prompts(spec, pool, 6, 3, np.random.default_rng(0))]
    config = PPOConfig(temperature=temperature, dtype="float32")
    VLLMServerBackend(fp32_server.url).load_adapter("parity-random", adapter)
    base_rollouts = _served_rollouts(fp32_server.url, prompts, None, temperature)
    tuned_rollouts = _served_rollouts(fp32_server.url, prompts, "parity-random", temperature)
    base_trainer = PPOTrainer(ready_asset(GENERATOR), config, cpu=True)
    tuned_trainer = PPOTrainer(ready_asset(GENERATOR), config, adapter=adapter, cpu=True)
    base_gap = base_trainer.served_gap(base_rollouts)
    tuned_gap = tuned_trainer.served_gap(tuned_rollouts)
    wrong_policy = base_trainer.served_gap(tuned_rollouts)  # a server that serves another policy than the trainer's
    print(f"\nT={temperature} fp32 server: base mae {base_gap['served_logprob_mae']:.2e} "
          f"(max {base_gap['served_logprob_max']:.2e}, {base_gap['served_tokens']} tokens), adapter mae "
          f"{tuned_gap['served_logprob_mae']:.2e} (max {tuned_gap['served_logprob_max']:.2e}); adapter samples "
          f"scored by the base: mae {wrong_policy['served_logprob_mae']:.2e}")
    assert base_gap["served_tokens"] > 100 and tuned_gap["served_tokens"] > 100
    # the adapter was served through signal-al's grouped CPU LoRA ops (the server's vLLM plugin)
    assert "signal_al_cpu_lora plugin" in Path(fp32_server.log_path).read_text(errors="replace")
    assert base_gap["served_logprob_mae"] < 1e-3 and tuned_gap["served_logprob_mae"] < 1e-3
    assert wrong_policy["served_logprob_mae"] > 50 * max(base_gap["served_logprob_mae"],
                                                          tuned_gap["served_logprob_mae"])
    assert tuned_gap["kl_served_k3"] > 0.01 and base_gap["kl_served_k3"] == 0.0  # the adapter really moved it
    if temperature == 1.0:  # the module's default-dtype server (bf16 on AMX CPUs): bf16 rounding, not a mismatch
        bf16 = PPOTrainer(ready_asset(GENERATOR), config, cpu=True).served_gap(
            _served_rollouts(server.url, prompts, None, temperature))
        print(f"default-dtype server: base mae {bf16['served_logprob_mae']:.2e} (max {bf16['served_logprob_max']:.2e})")
        assert bf16["served_logprob_mae"] < 0.1
