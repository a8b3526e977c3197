"""The vLLM server client against a local HTTP server that fails on purpose (fast, no vLLM)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.server import VLLMServerBackend
from signal_al.serving import ServerError, free_port


class FlakyServer:
    """Answers 503 to the first ``failures`` requests, then like vLLM's OpenAI server."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple[str, dict | None]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, payload: dict | None) -> None:
                with owner.lock:
                    owner.requests.append((self.path, payload))
                    failing = owner.failures > 0
                    owner.failures -= failing
                if failing:
                    return self._reply(503, {"error": "overloaded"})
                if self.path == "/health":
                    return self._reply(200, {})
                if self.path == "/v1/models":
                    return self._reply(200, {"data": [{"id": "base-model", "parent": None},
                                                      {"id": "round-1", "parent": "base-model"}]})
                if self.path == "/v1/load_lora_adapter":
                    if payload["lora_name"] == "round-1":
                        return self._reply(400, {"error": "The lora adapter 'round-1' has already been loaded."})
                    return self._reply(200, {})
                if self.path == "/v1/completions":
                    echo = f"{payload['model']}|{payload['seed']}|{payload['prompt']}"
                    return self._reply(200, {"choices": [{
                        "text": echo, "token_ids": [5, 6, 2], "prompt_token_ids": [1, len(payload["prompt"])],
                        "finish_reason": "stop", "logprobs": {"token_logprobs": [-0.5, -1.0, -0.1]},
                    }]})
                return self._reply(404, {"error": "not found"})

            def do_GET(self) -> None:
                self._handle(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self._handle(json.loads(self.rfile.read(length)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FlakyServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer(failures=3) as server:
        yield server


def test_retries_5xx_then_succeeds(flaky: FlakyServer) -> None:
    backend = VLLMServerBackend(flaky.url, model="base-model", retries=5, backoff=0.01)
    prompts = [f"prompt {i}" for i in range(8)]
    params = SamplingParams(max_tokens=5, temperature=0.5, top_p=0.9, seed=10, logprobs=True)
    completions = backend.generate(prompts, params)
    assert [c.text for c in completions] == [f"base-model|{10 + i}|prompt {i}" for i in range(8)]
    first = completions[0]
    assert (first.token_ids, first.prompt_token_ids, first.finish_reason) == ([5, 6, 2], [1, 8], "stop")
    assert first.logprobs == [-0.5, -1.0, -0.1]
    posts = [payload for path, payload in flaky.requests if path == "/v1/completions"]
    assert len(posts) == 8 + 3  # three 503s were retried
    # Sampling parameters always go out explicitly, with token ids requested.
    assert all(p["temperature"] == 0.5 and p["top_p"] == 0.9 and p["max_tokens"] == 5 and p["n"] == 1
               and p["return_token_ids"] is True and p["logprobs"] == 0 for p in posts)


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
