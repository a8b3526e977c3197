"""A bounded load test of ``signal-al serve-reward`` on loopback, against the in-process scorer.

Without ``--run`` it builds a throwaway run folder: the MiniLM-L6 classifier (the demo's, its head a
logistic-regression probe fitted on the labeled set) and ``--labeled`` rt-movies train sentences as
the labeled set. It then

1. scores every request's texts in process (``SignalScorer.from_run(run)``, one call per request,
   one after the other) and times it;
2. starts ``signal-al serve-reward`` on a free loopback port, and ``--clients`` concurrent clients
   send ``--requests`` ``POST /get_reward`` requests of ``--texts`` texts (prompt + completion) in all;
3. stops the server and checks that every returned score equals the in-process score of the same
   text (``--rtol``; different batch padding may move the last bits of a float32 forward pass).

The last line is

    reward_server: texts_per_s=… p50_ms=… p99_ms=… in_process_texts_per_s=… ratio=… errors=0 mismatches=0 max_rel_diff=…

and the exit code is 1 when a request failed or a score differs (``--min-ratio`` also fails a
slow server).

    python scripts/bench_reward_server.py
    python scripts/bench_reward_server.py --run runs/demo --clients 16 --texts 64 --requests 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "Based on the following examples of movie reviews, come up with a new example:\nNew Example:"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="A run folder (default: a throwaway MiniLM-L6 run on rt-movies).")
    parser.add_argument("--labeled", type=int, default=200, help="Labeled set size of the throwaway run.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent clients.")
    parser.add_argument("--texts", type=int, default=64, help="Texts per request.")
    parser.add_argument("--requests", type=int, default=32, help="Requests in all (a fixed count: it stops).")
    parser.add_argument("--rtol", type=float, default=1e-3, help="Relative tolerance of the score comparison.")
    parser.add_argument("--min-ratio", type=float, default=0.0, help="Fail when the server is slower than this "
                        "fraction of the in-process throughput (the goal is 0.8).")
    parser.add_argument("--timeout", type=float, default=180.0, help="Seconds to wait for the server to start.")
    return parser.parse_args(argv)


def build_run(folder: Path, n_labeled: int) -> Path:
    """A run folder with the MiniLM-L6 classifier and ``n_labeled`` rt-movies sentences as round 0."""
    import torch

    from signal_al.assets.registry import resolve_model
    from signal_al.classifier.training import load_classifier, load_tokenizer
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config
    from signal_al.core.run_state import Annotation, Item, RunState
    from signal_al.data import load_task
    from signal_al.engine.store import RunStore

    config = load_config(ExperimentConfig, None, ["name=bench", f"output_dir={folder}", "data.task=rt-movies",
                                                  "classifier.model=minilm-l6", "device=cpu"])
    data = load_task(config.data)
    store = RunStore(config.run_dir)
    store.write_config(config)
    items = [Item(id=f"r{i}", text=data.train.texts[i]) for i in range(n_labeled)]
    annotations = [Annotation(f"r{i}", int(data.train.labels[i]), 0, "ground_truth") for i in range(n_labeled)]
    torch.manual_seed(0)
    source = resolve_model(config.classifier.model)
    model = load_classifier(source, data.spec.label_names).eval()
    fit_head(model, load_tokenizer(source), [item.text for item in items], [a.label for a in annotations])
    checkpoint = store.save_checkpoint(model, 0)
    store.persist(RunState(round=0, pool_size=n_labeled, items=items, annotations=annotations, checkpoint=checkpoint,
                           metrics=[{"round": 0}]), data.spec.label_names)
    return config.run_dir


def fit_head(model, tokenizer, texts: list[str], labels: list[int]) -> None:
    """A linear probe as the classification head (logistic regression on the frozen embeddings), so
    the throwaway run's predictions spread like a trained classifier's instead of sitting at 1/C."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from signal_al.classifier.inference import predict

    emb = predict(model, tokenizer, texts, max_length=128).embeddings
    probe = LogisticRegression(C=10.0, max_iter=1000).fit(emb, labels)
    coef = probe.coef_ if probe.coef_.shape[0] > 1 else np.concatenate([-probe.coef_, probe.coef_]) / 2
    bias = probe.intercept_ if probe.intercept_.shape[0] > 1 else np.concatenate([-probe.intercept_,
                                                                                   probe.intercept_]) / 2
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        model.classifier.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def request_texts(count: int, per_request: int) -> list[list[str]]:
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config
    from signal_al.data import load_task

    texts = load_task(load_config(ExperimentConfig, None, ["data.task=rt-movies"]).data).test.texts
    flat = [texts[i % len(texts)] for i in range(count * per_request)]
    return [flat[r * per_request:(r + 1) * per_request] for r in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, requests: list[list[str]], clients: int) -> tuple[list, list[float], int, float]:
    import httpx

    results: list = [None] * len(requests)
    latencies: list[float] = []
    errors = 0
    queue = list(range(len(requests)))[::-1]

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            r = queue.pop()
            body = {"query": [f"{PROMPT} {t}" for t in requests[r]], "prompts": [PROMPT] * len(requests[r]),
                    "labels": [None] * len(requests[r])}
            start = time.perf_counter()
            try:
                response = await http.post(url, json=body)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1
                    print(f"request {r}: HTTP {response.status_code}: {response.text[:200]}", file=sys.stderr)
                    continue
                results[r] = response.json()["scores"]
            except Exception as exc:  # noqa: BLE001 - counted
                errors += 1
                print(f"request {r}: {type(exc).__name__}: {exc}", file=sys.stderr)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300.0, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return results, latencies, errors, wall


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the reward server exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the reward server did not answer {url} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-reward-") as tmp:
        run = Path(args.run) if args.run else build_run(Path(tmp), args.labeled)
        requests = request_texts(args.requests, args.texts)

        from signal_al.rewards.scorer import SignalScorer

        scorer = SignalScorer.from_run(run, device="cpu")
        scorer(requests[0][:2])  # the labeled set's features, once (the server does this before serving)
        start = time.perf_counter()
        expected = [scorer(texts) for texts in requests]
        in_process = args.requests * args.texts / (time.perf_counter() - start)
        del scorer

        port = free_port()
        log = open(Path(tmp) / "server.log", "w")
        server = subprocess.Popen([sys.executable, "-m", "signal_al.cli", "serve-reward", "--run", str(run),
                                   "--port", str(port), "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", server, args.timeout)
            results, latencies, errors, wall = asyncio.run(
                load(f"http://127.0.0.1:{port}/get_reward", requests, args.clients))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        if server.returncode not in (0, -15):
            print((Path(tmp) / "server.log").read_text()[-2000:], file=sys.stderr)

    mismatches, max_rel = 0, 0.0
    for got, want in zip(results, expected):
        if got is None:
            continue
        got = np.asarray(got, dtype=np.float64)
        rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
        max_rel = max(max_rel, float(rel.max(initial=0.0)))
        mismatches += int((~np.isclose(got, want, rtol=args.rtol, atol=0.0)).sum())
    texts_per_s = (args.requests - errors) * args.texts / wall
    ms = np.asarray(latencies) * 1000.0
    ratio = texts_per_s / in_process
    print(f"reward_server: texts_per_s={texts_per_s:.1f} p50_ms={np.percentile(ms, 50):.1f} "
          f"p99_ms={np.percentile(ms, 99):.1f} in_process_texts_per_s={in_process:.1f} ratio={ratio:.2f} "
          f"errors={errors} mismatches={mismatches} max_rel_diff={max_rel:.2g}")
    return 1 if errors or mismatches or ratio < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
