"""``signal-al serve-reward``: the SIGnAL reward as an HTTP service (OpenRLHF's remote reward protocol).

``POST /get_reward`` takes ``{"query": [...], "prompts": [...], "labels": [...]}`` (``prompts`` and
``labels`` optional; ``query[i]`` is prompt + completion, as OpenRLHF sends it) and answers
``{"rewards": [...], "scores": [...], "extra_logs": {...}}``:

- ``scores[i]``: the raw SIGnAL score of completion i (``query[i]`` minus ``prompts[i]``), the
  number :class:`~signal_al.rewards.SignalScorer` gives for the same text;
- ``rewards[i]``: the RL reward: the score, or the run's ``reward.invalid_penalty`` for an empty
  completion or a copy of a labeled text (:func:`~signal_al.integrations.runs.run_shaping`);
- ``extra_logs``: per-item ``signal_score`` and ``invalid`` (1.0 when penalised), which OpenRLHF
  averages into its logs.

``GET /health`` says whether the scorer is loaded. Texts of concurrent requests are scored together
(:class:`DynamicBatcher`: one classifier call for whatever arrived while the previous batch ran),
and every response carries its own texts' results in request order. A malformed request gets a
4xx JSON ``{"error": "..."}`` naming the field (bodies that are valid JSON but pathological, nested
thousands deep or naming a key twice, included) and one line in the server log; the server keeps
serving. The port is bound before the model loads, so a taken port fails before "serving at". Binds to loopback
unless told otherwise; ``api_key`` requires ``Authorization: Bearer KEY`` (or ``X-API-Key``) on
every route but ``/health``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import re
import socket
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["DynamicBatcher", "RequestError", "ServerSettings", "create_app", "parse_json_body", "parse_reward_request",
           "serve"]

@dataclass
class ServerSettings:
    """Where and how the reward service listens, and what it accepts."""

    host: str = "127.0.0.1"
    port: int = 5000
    api_key: str | None = None
    """When set, every request but ``GET /health`` must carry it (``Authorization: Bearer`` or ``X-API-Key``)."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body; a larger one gets 413."""
    max_texts: int = 4096
    """Most texts in one request."""
    max_text_chars: int = 100_000
    """Longest ``query`` item in characters."""
    max_batch_texts: int = 1024
    """Texts scored in one classifier call when requests pile up (a request is never split)."""
    max_wait_ms: float = 2.0
    """How long a batch waits for more requests before it is scored."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_texts", "max_text_chars", "max_batch_texts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)!r}")
        if not (self.max_wait_ms >= 0 and math.isfinite(self.max_wait_ms)):
            raise ValueError(f"max_wait_ms: must be a non-negative number, got {self.max_wait_ms!r}")


class RequestError(Exception):
    """A request the service rejects: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- request parsing -------------------------------------------------------------------------

#: JSON's \\uD800-\\uDFFF escapes decode to halves of a character that no tokenizer can encode.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json ``object_pairs_hook``: a key given twice is an error (json would keep the last one silently)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise RequestError(400, f"body: duplicate key {key!r}")
        out[key] = value
    return out


def parse_json_body(body: bytes) -> Any:
    """The JSON value of a request body, or a 400 :class:`RequestError` saying what is wrong with it:
    empty, not UTF-8, invalid JSON, nested too deeply, a number too long to convert, a key given twice."""
    if not body:
        raise RequestError(400, "body: empty; send a JSON object with a 'query' list")
    try:
        return json.loads(body, object_pairs_hook=_object_without_duplicate_keys)
    except UnicodeDecodeError:
        raise RequestError(400, "body: not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"body: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise RequestError(400, "body: nested too deeply to read (arrays or objects inside each other "
                                "thousands of levels deep)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise RequestError(400, f"body: invalid JSON ({str(exc).split(':')[0].strip()})") from None


def _strings(data: dict, key: str, n: int | None, settings: ServerSettings, *, limit_chars: bool) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise RequestError(422, f"{key}: expected a list of strings, got {type(value).__name__}")
    if n is not None and len(value) != n:
        raise RequestError(422, f"{key}: has {len(value)} items but query has {n}")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise RequestError(422, f"{key}[{i}]: expected a string, got {type(text).__name__}")
        if _LONE_SURROGATE.search(text):
            raise RequestError(422, f"{key}[{i}]: holds a lone surrogate ({_LONE_SURROGATE.search(text).group()!a}), "
                                    "which is not Unicode text")
        if limit_chars and len(text) > settings.max_text_chars:
            raise RequestError(413, f"{key}[{i}]: {len(text)} characters, more than the limit of "
                                    f"{settings.max_text_chars}")
    return value


def completion_of(query: str, prompt: str | None) -> str:
    """``query`` minus its ``prompt`` prefix (OpenRLHF sends prompt + completion); None: the whole query.

    >>> completion_of("Write a review: great fun", "Write a review:")
    ' great fun'
    """
    if prompt is None or not prompt:
        return query
    if query.startswith(prompt):
        return query[len(prompt):]
    stripped = query.lstrip()
    if stripped.startswith(prompt.strip()):  # a tokenizer round trip may drop leading whitespace
        return stripped[len(prompt.strip()):]
    raise ValueError("does not start with its prompt")


def parse_reward_request(data: Any, settings: ServerSettings, *, pair_task: bool = False
                         ) -> tuple[list[str], list[str] | None]:
    """The completions (and second segments for pair tasks) of a ``/get_reward`` body, or a
    :class:`RequestError` naming the field at fault."""
    if not isinstance(data, dict):
        raise RequestError(422, f"body: expected a JSON object with a 'query' list, got {type(data).__name__}")
    if "query" not in data:
        raise RequestError(422, "query: missing (expected a list of strings: prompt + completion each)")
    if isinstance(data["query"], list) and len(data["query"]) > settings.max_texts:
        raise RequestError(413, f"query: {len(data['query'])} texts, more than the limit of {settings.max_texts} "
                                "per request")
    query = _strings(data, "query", None, settings, limit_chars=True)
    if query is None:
        raise RequestError(422, "query: expected a list of strings, got null")
    prompts = _strings(data, "prompts", len(query), settings, limit_chars=False)
    labels = data.get("labels")
    if labels is not None and (not isinstance(labels, list) or len(labels) != len(query)):
        raise RequestError(422, f"labels: expected a list of {len(query)} items (one per query), got "
                                f"{len(labels) if isinstance(labels, list) else type(labels).__name__}")
    pairs = _strings(data, "pairs", len(query), settings, limit_chars=True)
    if pair_task and pairs is None:
        raise RequestError(422, "pairs: this run is a text-pair task; send the second segment of each query")
    if not pair_task and pairs is not None:
        raise RequestError(422, "pairs: this run scores single texts; leave 'pairs' out")
    completions = []
    for i, text in enumerate(query):
        try:
            completions.append(completion_of(text, None if prompts is None else prompts[i]))
        except ValueError as exc:
            raise RequestError(422, f"query[{i}]: {exc} (prompts[{i}])") from None
    return completions, pairs


# --- dynamic batching ------------------------------------------------------------------------


class DynamicBatcher:
    """Scores the texts of concurrent requests together: one ``score_fn`` call per batch, run in a
    single worker thread (the classifier is not shared across threads); each caller gets its own
    texts' scores, in order. A failing batch fails only the requests in it."""

    def __init__(self, score_fn: Callable[[list[str], list[str] | None], Sequence[float]], *,
                 max_batch_texts: int = 1024, max_wait_ms: float = 2.0) -> None:
        self._score_fn = score_fn
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signal-reward")
        self.batches = 0
        self.texts = 0

    async def score(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float64)
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        future = loop.create_future()
        await self._queue.put((texts, pairs, future))
        return await future

    async def _next_jobs(self) -> list[tuple]:
        loop = asyncio.get_running_loop()
        jobs = [await self._queue.get()]
        count = len(jobs[0][0])
        deadline = loop.time() + self.max_wait_s
        while count < self.max_batch_texts:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            count += len(job[0])
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._next_jobs()
            jobs = [job for job in jobs if not job[2].done()]  # the client went away
            if not jobs:
                continue
            texts = [t for job in jobs for t in job[0]]
            pairs = None if jobs[0][1] is None else [p for job in jobs for p in job[1]]
            try:
                scores = np.asarray(await loop.run_in_executor(self._executor, self._score_fn, texts, pairs),
                                    dtype=np.float64)
                if scores.shape != (len(texts),):
                    raise RuntimeError(f"the scorer returned {scores.shape} scores for {len(texts)} texts")
            except Exception as exc:  # noqa: BLE001 - handed to the requests of this batch
                for job in jobs:
                    if not job[2].done():
                        job[2].set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(texts)
            start = 0
            for job in jobs:
                stop = start + len(job[0])
                if not job[2].done():
                    job[2].set_result(scores[start:stop])
                start = stop

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- the app -----------------------------------------------------------------------------------


def create_app(scorer: Any, settings: ServerSettings | None = None, *, info: Any = None, shaping: Any = None,
               log: Callable[[str], None] | None = None):
    """The FastAPI app serving ``scorer`` (a :class:`~signal_al.rewards.SignalScorer` or any
    ``(texts, pairs) -> scores`` callable with ``labeled_texts``); ``info`` is the run's
    :class:`~signal_al.rewards.run_reward.RunReward`, ``shaping`` the :class:`RewardShaping`.
    ``log`` gets one line per request answered with an error (default: stderr)."""
    if log is None:
        log = lambda line: print(f"signal-al reward: {line}", file=sys.stderr, flush=True)  # noqa: E731
    from signal_al.rewards.shaping import RewardShaping, invalid_reasons, shape_rewards

    settings = settings or ServerSettings()
    shaping = shaping or RewardShaping()
    pair_task = bool(getattr(info, "pair_task", False))
    labeled = list(getattr(scorer, "labeled_texts", ()) or ()) if shaping.penalize_copies else []
    batcher = DynamicBatcher(lambda texts, pairs: scorer(texts, pairs), max_batch_texts=settings.max_batch_texts,
                             max_wait_ms=settings.max_wait_ms)
    @asynccontextmanager
    async def lifespan(_app):
        yield
        batcher.close()

    app = FastAPI(title="signal-al reward", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.batcher = batcher
    app.state.settings = settings

    def error(status: int, message: str, request: Request) -> JSONResponse:
        """The JSON error answer, and its one line in the server log (never a traceback)."""
        log(f"{status} {request.method} {request.url.path}: {' '.join(message.split())}")
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):  # 404, 405 as JSON too
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", request)

    def authorized(request: Request) -> bool:
        if settings.api_key is None:
            return True
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), settings.api_key.encode())

    async def read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            raise RequestError(413, f"body: {int(length)} bytes, more than the limit of {settings.max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > settings.max_body_bytes:
                raise RequestError(413, f"body: more than the limit of {settings.max_body_bytes} bytes")
        return parse_json_body(bytes(body))

    @app.get("/health")
    async def health():
        return {"status": "ok", "round": getattr(info, "round", None), "batches": batcher.batches,
                "texts": batcher.texts}

    async def rewards_of(request: Request) -> dict:
        if not authorized(request):
            raise RequestError(401, "unauthorized: send the API key as 'Authorization: Bearer KEY' or 'X-API-Key'")
        completions, pairs = parse_reward_request(await read_json(request), settings, pair_task=pair_task)
        texts = [c.strip() for c in completions]
        scores = await batcher.score(texts, pairs)
        reasons = invalid_reasons(texts, max_chars=shaping.max_chars, labeled=labeled)
        invalid = np.array([r is not None for r in reasons], dtype=bool)
        rewards = shape_rewards(scores, invalid, shaping) if len(texts) else np.zeros(0)
        return {"rewards": np.asarray(rewards, dtype=np.float64).tolist(), "scores": scores.tolist(),
                "extra_logs": {"signal_score": scores.tolist(), "invalid": invalid.astype(np.float64).tolist()}}

    @app.post("/get_reward")
    async def get_reward(request: Request):
        try:
            return await rewards_of(request)
        except RequestError as exc:
            return error(exc.status, exc.message, request)
        except Exception as exc:  # noqa: BLE001 - a failing scorer is a 500 and one log line, not a traceback
            return error(500, f"internal error: {type(exc).__name__}: {exc}", request)

    return app


def serve(scorer: Any, settings: ServerSettings, *, info: Any = None, shaping: Any = None,
          log: Callable[[str], None] = print, sock: socket.socket | None = None) -> None:
    """Run the service until interrupted (uvicorn), on ``sock`` when given (bound before the model
    loaded: :func:`signal_al.generation.server.access.bind_listening_socket`), else bound here first."""
    import uvicorn

    from signal_al.generation.server.access import bind_listening_socket, is_loopback

    if not is_loopback(settings.host) and settings.api_key is None:
        log(f"warning: serving on {settings.host} without an API key: anyone who can reach this port can "
            "query the classifier (pass --api-key-file or set SIGNAL_AL_REWARD_API_KEY)")
    sock = sock or bind_listening_socket(settings.host, settings.port)
    scorer(["warm-up"], ["warm-up"] if getattr(info, "pair_task", False) else None)  # labeled features, once
    app = create_app(scorer, settings, info=info, shaping=shaping, log=log)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    log(f"serving the SIGnAL reward at http://{settings.host}:{settings.port}/get_reward; Ctrl-C to stop")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
