"""Several generator servers, adapter names unique per run, served-model check and API keys (fast, fake servers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.server import VLLMServerBackend
from helpers import JSONServer
from signal_al.core.errors import ServerError
from signal_al.generation.server.access import API_KEY_ENV, api_key_for, free_port
from signal_al.generation.server.process import ServerSettings, VLLMServer


class FakeVLLM:
    """vLLM's OpenAI protocol: completions, /v1/models, load_lora_adapter ('already loaded' is a 400 that keeps
    the first path), optional API key on /v1; ``fail`` makes it answer 503; completions name the adapter's path."""

    def __init__(self, model: str = "base-model", api_key: str | None = None) -> None:
        self.model, self.api_key = model, api_key
        self.adapters: dict[str, str] = {}
        self.requests: list[tuple[str, dict | None]] = []
        self.fail = False
        self.server = JSONServer(self._route)
        self.url = self.server.url

    def _route(self, path: str, headers, payload: dict | None) -> tuple[int, dict]:
        self.requests.append((path, payload))
        if self.fail:
            return 503, {"error": "down"}
        if path == "/health":
            return 200, {}
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "Unauthorized"}
        if path == "/v1/models":
            rows = [{"id": self.model, "parent": None}]
            return 200, {"data": rows + [{"id": n, "parent": self.model} for n in self.adapters]}
        if path == "/v1/load_lora_adapter":
            name = payload["lora_name"]
            if name in self.adapters:
                return 400, {"error": f"The lora adapter '{name}' has already been loaded."}
            self.adapters[name] = payload["lora_path"]
            return 200, {}
        if path == "/v1/completions":
            model = payload["model"]
            source = self.adapters.get(model, model)
            choices = [{"index": j, "text": f"{source}|{payload['seed']}|{payload['prompt']}|{j}",
                        "token_ids": [5, j], "prompt_token_ids": [1, 2], "finish_reason": "stop"}
                       for j in range(payload["n"])]
            return 200, {"choices": choices}
        return 404, {"error": "not found"}

    def posts(self, path: str = "/v1/completions") -> list[dict]:
        return [p for q, p in self.requests if q == path]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def two() -> Iterator[tuple[FakeVLLM, FakeVLLM]]:
    servers = FakeVLLM(), FakeVLLM()
    yield servers
    for server in servers:
        server.stop()


def _adapter(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def test_prompts_are_spread_over_servers_with_the_same_outputs_as_one(two) -> None:
    a, b = two
    params = SamplingParams(seed=7, n=2)
    prompts = [f"p{i}" for i in range(6)]
    spread = VLLMServerBackend([a.url, b.url], model="base-model", backoff=0.01).generate(prompts, params)
    assert len(a.posts()) == len(b.posts()) == 3  # prompt i on server i mod 2
    alone = VLLMServerBackend(a.url, model="base-model").generate(prompts, params)
    assert [c.text for c in spread] == [c.text for c in alone]  # seeds do not depend on the server


def test_adapters_are_loaded_on_every_server(two, tmp_path: Path) -> None:
    a, b = two
    backend = VLLMServerBackend([a.url, b.url], backoff=0.01)
    path = _adapter(tmp_path / "round-001", b"w1")
    backend.load_adapter("round-1-x", path)
    assert a.adapters == b.adapters == {"round-1-x": str(path)}
    out = backend.generate(["p0", "p1"], SamplingParams(seed=0), adapter="round-1-x")
    assert all(c.text.startswith(str(path)) for c in out)


def test_a_failing_server_is_dropped_and_its_prompts_go_to_the_other(two, tmp_path: Path) -> None:
    a, b = two
    logs: list[str] = []
    backend = VLLMServerBackend([a.url, b.url], model="base-model", retries=1, backoff=0.01, log=logs.append)
    b.fail = True
    out = backend.generate([f"p{i}" for i in range(4)], SamplingParams(seed=3))
    assert [c.text for c in out] == [f"base-model|{3 + i}|p{i}|0" for i in range(4)]
    assert len(a.posts()) == 4 and backend.urls == [a.url, b.url] and [r.url for r in backend.live] == [a.url]
    assert any(b.url in line and "1 of 2 left" in line for line in logs)
    backend.load_adapter("round-1-x", _adapter(tmp_path / "ad", b"w"))  # only on the server still in use
    assert "round-1-x" in a.adapters and not b.adapters
    a.fail = True
    with pytest.raises(ServerError, match="all 2 vLLM servers failed") as info:
        backend.generate(["q"], SamplingParams(seed=0))
    assert a.url in str(info.value) and b.url in str(info.value)


def test_an_unreachable_server_at_start_is_skipped() -> None:
    a = FakeVLLM()
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        backend = VLLMServerBackend([dead, a.url], retries=0, backoff=0.01, expected_model="base-model",
                                    log=lambda _: None)
        assert backend.model == "base-model"
        assert len(backend.generate(["p0", "p1", "p2"], SamplingParams(seed=0))) == 3
        assert [r.url for r in backend.live] == [a.url]
    finally:
        a.stop()


def test_the_served_model_must_be_the_configured_one(two) -> None:
    a, _ = two
    a.model = "/models/other-model"
    backend = VLLMServerBackend(a.url, expected_model="smollm2-135m-instruct")
    with pytest.raises(ServerError, match="serves '/models/other-model', but generator.model is 'smollm2"):
        backend.generate(["p"], SamplingParams(seed=0))
    a.model = "/root/.cache/x/smollm2-135m-instruct-elsewhere"
    with pytest.raises(ServerError, match="generator.model"):
        VLLMServerBackend(a.url, expected_model="/root/.cache/x/smollm2-135m-instruct").check()
    a.model = "/models/mine"
    VLLMServerBackend(a.url, expected_model="/models/mine/").check()  # the same folder
    with pytest.raises(ServerError, match="lists a server twice"):
        VLLMServerBackend([a.url, a.url + "/"])


def test_two_runs_on_one_server_generate_with_their_own_adapters(tmp_path: Path) -> None:
    """Round-numbered names let the second run silently use the first run's round-1 adapter."""
    from signal_al.data.task import TaskSpec, TextDataset
    from signal_al.generation.config import GeneratorConfig
    from signal_al.generation.generator import CandidateGenerator

    class NoTemplate:
        chat_template = None

    server = FakeVLLM()
    try:
        pool = TextDataset(["A film worth the ticket.", "A long and dull movie."], np.array([1, 0]), ids=["a", "b"])
        spec = TaskSpec("rt-movies", ("negative", "positive"), "movie reviews")
        config = GeneratorConfig(num_in_context=1, min_words=1)
        runs = []
        for run in ("run-a", "run-b"):
            backend = VLLMServerBackend(server.url, model="base-model", backoff=0.01)
            generator = CandidateGenerator(config, spec, backend, NoTemplate(), log=lambda _: None)
            path = _adapter(tmp_path / run / "adapters" / "round-001", run.encode())
            name = generator.load_adapter(path, round_index=1)
            runs.append((name, path, generator.generate(pool, 2, round_index=2)))
        (name_a, path_a, out_a), (name_b, path_b, out_b) = runs
        assert name_a != name_b and name_a.startswith("round-1-") and name_b.startswith("round-1-")
        assert all(c.raw_output.startswith(str(path_a)) and c.adapter == name_a for c in out_a)
        assert all(c.raw_output.startswith(str(path_b)) and c.adapter == name_b for c in out_b)
        # the same adapter again (a resumed run) keeps its name; "already loaded" is then right
        again = CandidateGenerator(config, spec, VLLMServerBackend(server.url, model="base-model"), NoTemplate())
        assert again.load_adapter(path_a, round_index=1) == name_a
    finally:
        server.stop()


def test_the_api_key_is_sent_and_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeVLLM(api_key="s3cret")
    try:
        monkeypatch.delenv(API_KEY_ENV, raising=False)
        with pytest.raises(ServerError, match=f"{server.url} refused the request .401.*{API_KEY_ENV}"):
            VLLMServerBackend(server.url, backoff=0.01).generate(["p"], SamplingParams(seed=0))
        out = VLLMServerBackend(server.url, api_key="s3cret").generate(["p"], SamplingParams(seed=0))
        assert out[0].text == "base-model|0|p|0"
        monkeypatch.setenv(API_KEY_ENV, "s3cret")
        assert api_key_for(server.url) == "s3cret"
        assert VLLMServerBackend(server.url).generate(["p"], SamplingParams(seed=0))[0].text == "base-model|0|p|0"
    finally:
        server.stop()


# A stand-in vLLM server that, like vLLM, guards /v1 with $VLLM_API_KEY when it is set.
FAKE_SERVER = r'''
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
key = os.environ.get("VLLM_API_KEY")
open(sys.argv[0] + ".args", "w").write(json.dumps(args))
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def _ok(self, body):
        if self.path.startswith("/v1") and key and self.headers.get("Authorization") != "Bearer " + key:
            return self._send(401, {"error": "Unauthorized"})
        self._send(200, body)
    def do_GET(self):
        self._ok({"data": [{"id": args[args.index("--model") + 1], "parent": None}]} if self.path == "/v1/models" else {})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._ok({"choices": [{"text": "hi", "token_ids": [1], "prompt_token_ids": [2], "index": 0}]})
HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def _fake_python(tmp_path: Path) -> Path:
    server = tmp_path / "fake_vllm.py"
    server.write_text(FAKE_SERVER)
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nexec "{sys.executable}" "{server}" "$@"\n')
    script.chmod(0o755)
    return script


def test_managed_servers_get_a_per_run_key_that_only_this_process_sends(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    from signal_al.generation.config import GeneratorConfig
    from signal_al.generation.server.process import managed_server

    monkeypatch.delenv(API_KEY_ENV, raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    config = GeneratorConfig(model=str(model), server_urls=urls, start_server=True,
                             server_python=str(_fake_python(tmp_path)))
    logs: list[str] = []
    with managed_server(config, log_file=tmp_path / "vllm-server.log", log=logs.append):
        keys = {api_key_for(url) for url in urls}
        assert len(keys) == 1 and None not in keys  # one fresh key for the run's servers
        assert requests.get(f"{urls[0]}/v1/models", timeout=5).status_code == 401  # anyone else: refused
        backend = VLLMServerBackend.from_config(config)
        out = backend.generate(["a", "b"], SamplingParams(seed=0))
        assert [c.text for c in out] == ["hi", "hi"]
        args = json.loads((tmp_path / "fake_vllm.py.args").read_text())
        assert not any(key in args for key in keys) and "--api-key" not in args  # not visible in `ps`
        assert args[args.index("--host") + 1] == "127.0.0.1"
    assert all(api_key_for(url) is None for url in urls)  # forgotten with the servers
    assert not any("warning" in line for line in logs)


def test_a_non_loopback_bind_says_what_it_exposes(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    logs: list[str] = []
    settings = ServerSettings(model=str(model), host="0.0.0.0", port=free_port(), python=str(_fake_python(tmp_path)),
                              log_file=tmp_path / "server.log", start_timeout=30)
    with VLLMServer(settings, log=logs.append):
        pass
    warning = next(line for line in logs if line.startswith("warning"))
    assert "every network interface" in warning and "NO API key" in warning and "load_lora_adapter" in warning
