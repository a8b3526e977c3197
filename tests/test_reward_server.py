"""`signal-al serve-reward`: OpenRLHF's remote reward protocol, dynamic batching, limits and errors."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from reward_helpers import fake_run

from signal_al.integrations.reward_server import DynamicBatcher, ServerSettings, create_app

PROMPT = "Write a movie review:"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_classifier_dir) -> Path:
    return fake_run(tmp_path_factory.mktemp("reward-server"), tiny_classifier_dir)


@pytest.fixture(scope="module")
def scorer(run_dir):
    from signal_al.rewards.scorer import SignalScorer

    return SignalScorer.from_run(run_dir)


def _client(scorer, **settings):
    from fastapi.testclient import TestClient

    from signal_al.integrations.runs import run_shaping

    app = create_app(scorer, ServerSettings(**settings), info=scorer.run, shaping=run_shaping(scorer.run.run_dir))
    return TestClient(app)


class CountingScorer:
    """A stub scorer: the score of a text is its length; records every batch it is called with."""

    labeled_texts = ["copy me"]

    def __init__(self, delay: float = 0.05) -> None:
        self.batches: list[int] = []
        self.delay = delay

    def __call__(self, texts, pairs=None):
        self.batches.append(len(texts))
        time.sleep(self.delay)
        return [float(len(t)) for t in texts]


def test_get_reward_answers_openrlhf_with_the_in_process_scores(scorer) -> None:
    texts = ["a funny story", "the film was very sad", "not a good movie", "  "]
    with _client(scorer) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["round"] == 1
        body = {"query": [f"{PROMPT} {t}" for t in texts], "prompts": [PROMPT] * 4, "labels": ["", "", "", ""]}
        response = client.post("/get_reward", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert set(out) == {"rewards", "scores", "extra_logs"}
    expected = scorer([t.strip() for t in texts])
    assert out["scores"] == expected.tolist()  # one request is one batch: the same computation, bit for bit
    assert out["rewards"][:3] == expected[:3].tolist() and out["rewards"][3] == -1.0  # empty: the run's penalty
    assert out["extra_logs"] == {"signal_score": out["scores"], "invalid": [0.0, 0.0, 0.0, 1.0]}


def test_completion_is_query_minus_prompt_and_copies_are_penalised(scorer) -> None:
    labeled = scorer.labeled_texts[0]
    with _client(scorer) as client:
        out = client.post("/get_reward", json={"query": [f"{PROMPT}{labeled}", "just a completion"]}).json()
        with_prompts = client.post("/get_reward", json={"query": [f"{PROMPT}{labeled}", "x a good movie"],
                                                        "prompts": [PROMPT, "x"]}).json()
        empty = client.post("/get_reward", json={"query": []}).json()
    assert out["extra_logs"]["invalid"] == [0.0, 0.0]  # without prompts the whole query is the completion
    assert with_prompts["rewards"][0] == -1.0 and with_prompts["extra_logs"]["invalid"] == [1.0, 0.0]
    assert with_prompts["scores"][1] == pytest.approx(scorer(["a good movie"])[0], rel=5e-3)  # batched with another
    assert empty == {"rewards": [], "scores": [], "extra_logs": {"signal_score": [], "invalid": []}}


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "body: invalid JSON"),
    (b"", 400, "body: empty"),
    (b'{"query": ["\xc3("]}', 400, "body: not UTF-8 JSON"),
    (b"[1, 2]", 422, "body: expected a JSON object"),
    (b'{"prompts": ["a"]}', 422, "query: missing"),
    (b'{"query": "a text"}', 422, "query: expected a list of strings, got str"),
    (b'{"query": ["ok", 3]}', 422, "query[1]: expected a string, got int"),
    (b'{"query": ["a", "b"], "prompts": ["a"]}', 422, "prompts: has 1 items but query has 2"),
    (b'{"query": ["a"], "prompts": [null]}', 422, "prompts[0]: expected a string, got NoneType"),
    (b'{"query": ["a b"], "prompts": ["c"]}', 422, "query[0]: does not start with its prompt (prompts[0])"),
    (b'{"query": ["a"], "labels": ["x", "y"]}', 422, "labels: expected a list of 1 items"),
    (b'{"query": ["a"], "pairs": ["b"]}', 422, "pairs: this run scores single texts"),
])
def test_malformed_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(
        scorer, body: bytes, status: int, message: str) -> None:
    with _client(scorer) as client:
        response = client.post("/get_reward", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status
        assert message in response.json()["error"]
        assert client.post("/get_reward", json={"query": ["still serving"]}).status_code == 200


def test_size_limits(scorer) -> None:
    with _client(scorer, max_texts=3, max_text_chars=20, max_body_bytes=400) as client:
        too_many = client.post("/get_reward", json={"query": ["a"] * 4})
        too_long = client.post("/get_reward", json={"query": ["x" * 21]})
        too_big = client.post("/get_reward", json={"query": ["a"], "labels": ["y" * 500]})
        assert client.post("/get_reward", json={"query": ["a", "b", "c"]}).status_code == 200
    assert too_many.status_code == 413 and "4 texts, more than the limit of 3" in too_many.json()["error"]
    assert too_long.status_code == 413 and "query[0]: 21 characters" in too_long.json()["error"]
    assert too_big.status_code == 413 and "more than the limit of 400" in too_big.json()["error"]


def test_api_key(scorer) -> None:
    with _client(scorer, api_key="s3cret") as client:
        assert client.get("/health").status_code == 200
        missing = client.post("/get_reward", json={"query": ["a"]})
        wrong = client.post("/get_reward", json={"query": ["a"]}, headers={"Authorization": "Bearer nope"})
        bearer = client.post("/get_reward", json={"query": ["a"]}, headers={"Authorization": "Bearer s3cret"})
        header = client.post("/get_reward", json={"query": ["a"]}, headers={"X-API-Key": "s3cret"})
    assert missing.status_code == wrong.status_code == 401 and "unauthorized" in missing.json()["error"]
    assert bearer.status_code == header.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "0.0.0.0"])
def test_serve_warns_off_loopback_by_the_one_loopback_rule(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """serve-reward and the generator server share one loopback rule (127.0.0.0/8, ::1, localhost): a
    keyless bind warns exactly where the generator server's exposure warning would."""
    import uvicorn

    from signal_al.generation.server.access import bind_listening_socket, exposure_warning, free_port, is_loopback
    from signal_al.integrations.reward_server import serve

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    port = free_port()
    lines: list[str] = []
    serve(CountingScorer(delay=0.0), ServerSettings(host=host, port=port), log=lines.append,
          sock=bind_listening_socket(host, port))
    warned = any("without an API key" in line for line in lines)
    assert warned == (host == "0.0.0.0") == (not is_loopback(host)) == (exposure_warning(host, port, None) is not None)


def test_unknown_routes_are_json_errors(scorer) -> None:
    with _client(scorer) as client:
        assert client.get("/nope").json() == {"error": "GET /nope: Not Found"}
        assert client.get("/get_reward").status_code == 405


def test_pair_task_runs_need_pairs(tmp_path: Path, tiny_classifier_dir: Path) -> None:
    from signal_al.rewards.scorer import SignalScorer

    pair_scorer = SignalScorer.from_run(fake_run(tmp_path, tiny_classifier_dir, "pairs", pairs=True))
    assert pair_scorer.run.pair_task
    with _client(pair_scorer) as client:
        missing = client.post("/get_reward", json={"query": ["a question"]})
        ok = client.post("/get_reward", json={"query": ["a question"], "pairs": ["an answer"]})
    assert missing.status_code == 422 and "pairs: this run is a text-pair task" in missing.json()["error"]
    assert ok.json()["scores"] == pair_scorer(["a question"], ["an answer"]).tolist()


def test_dynamic_batcher_merges_concurrent_requests_and_answers_each_in_order() -> None:
    stub = CountingScorer()
    batcher = DynamicBatcher(stub, max_batch_texts=64, max_wait_ms=20)

    async def main():
        requests = [[f"{'x' * (r + 1)}{'y' * i}" for i in range(r % 4 + 1)] for r in range(12)]
        results = await asyncio.gather(*(batcher.score(texts) for texts in requests))
        return requests, results

    requests, results = asyncio.run(main())
    batcher.close()
    for texts, scores in zip(requests, results):
        assert scores.tolist() == [float(len(t)) for t in texts]
    assert sum(stub.batches) == sum(len(t) for t in requests) and len(stub.batches) < len(requests)
    assert max(stub.batches) <= 64 + 4


def test_dynamic_batcher_fails_only_the_batch_that_failed() -> None:
    calls = []

    def flaky(texts, pairs=None):
        calls.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("boom")
        return [1.0] * len(texts)

    batcher = DynamicBatcher(flaky, max_wait_ms=0)

    async def main():
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.score(["boom"])
        return await batcher.score(["fine", "also fine"])

    assert asyncio.run(main()).tolist() == [1.0, 1.0]
    batcher.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_concurrent_http_clients_over_uvicorn() -> None:
    """A real server on loopback: 16 concurrent clients, every answer its own texts' scores."""
    import httpx
    import uvicorn

    stub = CountingScorer(delay=0.1)
    app = create_app(stub, ServerSettings(max_wait_ms=5))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)

        async def main():
            async with httpx.AsyncClient(timeout=30) as http:
                async def one(r: int):
                    texts = [f"request {r} text {i}" + "z" * r for i in range(8)]
                    response = await http.post(f"http://127.0.0.1:{port}/get_reward", json={"query": texts})
                    return texts, response
                return await asyncio.gather(*(one(r) for r in range(16)))

        for texts, response in asyncio.run(main()):
            assert response.status_code == 200
            assert response.json()["scores"] == [float(len(t)) for t in texts]
        assert len(stub.batches) < 16  # requests were merged
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.slow
def test_serve_reward_command_openrlhf_snippet(run_dir: Path, scorer) -> None:
    """The README's OpenRLHF snippet: `signal-al serve-reward --run RUN` answering /get_reward."""
    import httpx

    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "signal_al.cli", "serve-reward", "--run", str(run_dir),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        body = {"query": [f"{PROMPT} a funny story"], "prompts": [PROMPT], "labels": [None]}
        out = httpx.post(f"http://127.0.0.1:{port}/get_reward", json=body, timeout=30).json()
        assert out["scores"] == pytest.approx(scorer(["a funny story"]).tolist(), rel=1e-3)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert json.dumps(out)
