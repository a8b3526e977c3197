"""The vLLM server client against a local HTTP server that fails on purpose (fast, no vLLM)."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from helpers import JSONServer
from signal_al.core.errors import ServerError
from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.server import VLLMServerBackend
from signal_al.generation.server.access import free_port


class FlakyServer:
    """Answers 503 to the first ``failures`` requests, then like vLLM's OpenAI server."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[str, dict | None]] = []
        self.lock = threading.Lock()
        self.server: JSONServer | None = None

    def _route(self, path: str, headers, payload: dict | None) -> tuple[int, dict]:
        with self.lock:
            self.requests.append((path, payload))
            failing = self.failures > 0
            self.failures -= failing
        if failing:
            return 503, {"error": "overloaded"}
        if path == "/health":
            return 200, {}
        if path == "/v1/models":
            return 200, {"data": [{"id": "base-model", "parent": None}, {"id": "round-1", "parent": "base-model"}]}
        if path == "/v1/load_lora_adapter":
            if payload["lora_name"] == "round-1":
                return 400, {"error": "The lora adapter 'round-1' has already been loaded."}
            return 200, {}
        if path == "/v1/completions":
            if "too long" in payload["prompt"]:  # vLLM's answer to a prompt over max_model_len
                return 400, {"error": {"message": "This model's maximum context length is 1024 tokens.",
                                       "type": "BadRequestError", "code": 400}}
            # n choices, listed out of order; like vLLM, only one carries the prompt's ids.
            choices = [{
                "index": j, "text": f"{payload['model']}|{payload['seed']}|{payload['prompt']}|{j}",
                "token_ids": [5, 6, j], "prompt_token_ids": [1, len(payload["prompt"])] if j == 0 else None,
                "finish_reason": "stop", "logprobs": {"token_logprobs": [-0.5, -1.0, -0.1]},
            } for j in range(payload["n"])]
            return 200, {"choices": choices[::-1]}
        return 404, {"error": "not found"}

    def __enter__(self) -> "FlakyServer":
        self.server = JSONServer(self._route)
        self.url = self.server.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer(failures=3) as server:
        yield server


def test_retries_5xx_then_succeeds(flaky: FlakyServer) -> None:
    backend = VLLMServerBackend(flaky.url, model="base-model", retries=5, backoff=0.01)
    prompts = [f"prompt {i}" for i in range(8)]
    params = SamplingParams(max_tokens=5, temperature=0.5, top_p=0.9, seed=10, logprobs=True)
    completions = backend.generate(prompts, params)
    assert [c.text for c in completions] == [f"base-model|{10 + i}|prompt {i}|0" for i in range(8)]
    first = completions[0]
    assert (first.token_ids, first.prompt_token_ids, first.finish_reason) == ([5, 6, 0], [1, 8], "stop")
    assert first.logprobs == [-0.5, -1.0, -0.1]
    posts = [payload for path, payload in flaky.requests if path == "/v1/completions"]
    assert len(posts) == 8 + 3  # three 503s were retried
    # Sampling parameters always go out explicitly, with token ids requested.
    assert all(p["temperature"] == 0.5 and p["top_p"] == 0.9 and p["max_tokens"] == 5 and p["n"] == 1
               and p["return_token_ids"] is True and p["logprobs"] == 0 for p in posts)


def test_n_samples_per_prompt_are_one_seeded_request_each() -> None:
    with FlakyServer() as server:
        backend = VLLMServerBackend(server.url, model="base-model", backoff=0.01)
        params = SamplingParams(max_tokens=5, seed=100, n=3)
        completions = backend.generate(["first", "second"], params)
        posts = [payload for path, payload in server.requests if path == "/v1/completions"]
    assert sorted((p["prompt"], p["n"], p["seed"]) for p in posts) == [("first", 3, 100), ("second", 3, 103)]
    # Prompt-major, samples in index order, each sample with its prompt's token ids.
    assert [c.text for c in completions] == [f"base-model|{seed}|{prompt}|{j}" for prompt, seed in
                                             (("first", 100), ("second", 103)) for j in range(3)]
    assert [c.prompt_token_ids for c in completions] == [[1, 5]] * 3 + [[1, 6]] * 3
    assert [c.token_ids[-1] for c in completions] == [0, 1, 2, 0, 1, 2]


def test_a_refused_prompt_is_an_error_completion_and_all_refused_is_an_error() -> None:
    with FlakyServer() as server:
        backend = VLLMServerBackend(server.url, model="base-model", backoff=0.01)
        completions = backend.generate(["fine", "too long", "fine too"], SamplingParams(seed=0, n=2))
        assert [c.error is None for c in completions] == [True, True, False, False, True, True]
        assert completions[2].error == "400: This model's maximum context length is 1024 tokens."
        assert completions[2].token_ids == [] and completions[2].text == ""
        with pytest.raises(ServerError, match="refused all 1 requests: 400: This model's maximum context"):
            backend.generate(["too long"], SamplingParams())


def test_generator_drops_a_refused_prompt_and_keeps_the_rest() -> None:
    """One prompt over the server's context (a 400) must not end a run: its samples are dropped."""
    import numpy as np

    from signal_al.data.task import TaskSpec, TextDataset
    from signal_al.generation.config import GeneratorConfig
    from signal_al.generation.generator import CandidateGenerator

    class NoTemplate:
        chat_template = None

    pool = TextDataset(["A film that is too long to watch.", "A short and sweet delight of a movie."],
                       np.array([0, 1]), ids=["a", "b"])
    spec = TaskSpec("rt-movies", ("negative", "positive"), "movie reviews")
    with FlakyServer() as server:
        backend = VLLMServerBackend(server.url, model="base-model", backoff=0.01)
        config = GeneratorConfig(num_in_context=1, samples_per_prompt=2, min_words=1)
        candidates = CandidateGenerator(config, spec, backend, NoTemplate(), log=lambda _: None).generate(pool, 6)
    refused = [c for c in candidates if c.drop_reason == "request_rejected"]
    assert len(candidates) == 12 and 0 < len(refused) < 12
    assert all(c.example_ids == ["a"] and not c.generated for c in refused)
    assert all(c.generated and c.example_ids == ["b"] for c in candidates if c not in refused)


def test_requests_with_an_adapter_name_it_as_model(flaky: FlakyServer) -> None:
    backend = VLLMServerBackend(flaky.url, backoff=0.01)
    backend.load_adapter("round-2", _adapter_dir())
    backend.load_adapter("round-1", _adapter_dir())  # already loaded: accepted
    assert backend.adapters() == ["round-1"]
    out = backend.generate(["p"], SamplingParams(seed=0), adapter="round-2")
    assert out[0].text.startswith("round-2|")
    loads = [payload for path, payload in flaky.requests if path == "/v1/load_lora_adapter"]
    assert loads[0] == {"lora_name": "round-2", "lora_path": str(_adapter_dir())}


def test_still_failing_after_the_last_retry_names_the_url() -> None:
    with FlakyServer(failures=100) as server:
        backend = VLLMServerBackend(server.url, model="base-model", retries=2, backoff=0.01)
        with pytest.raises(ServerError, match=rf"{server.url}/v1/completions answered 503 after 3 attempts"):
            backend.generate(["p"], SamplingParams())


def test_connection_refused_names_the_url_and_how_to_start_a_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = VLLMServerBackend(url, retries=2, backoff=0.01)
    assert not backend.health()
    with pytest.raises(ServerError) as info:
        backend.generate(["p"], SamplingParams())
    message = str(info.value)
    assert f"{url}/v1/models" in message or f"{url}/v1/completions" in message
    assert "connection refused" in message and "signal-al serve-generator" in message


def test_cli_generate_without_a_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.cli import main

    code = main(["generate", "--task", "rt-movies", "--n", "2", "--server-url", f"http://127.0.0.1:{free_port()}",
                 "--set", "generator.request_retries=0"])
    err = capsys.readouterr().err
    assert code == 2 and "could not reach the vLLM server" in err and "serve-generator" in err
    assert "Traceback" not in err


_ADAPTER = None


def _adapter_dir():
    """A folder that looks like a LoRA adapter (the fake server never reads it)."""
    global _ADAPTER
    if _ADAPTER is None:
        import tempfile
        from pathlib import Path

        _ADAPTER = Path(tempfile.mkdtemp(prefix="fake-adapter-"))
        (_ADAPTER / "adapter_config.json").write_text("{}")
    return _ADAPTER
