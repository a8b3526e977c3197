"""Generation through vLLM OpenAI-compatible servers over HTTP (the default backend).

The servers may run in another environment or on other GPUs; the trainer only needs their
URLs. Requests go out in parallel (vLLM batches concurrent requests), one prompt each so
that prompt ``i`` gets its own seed; a request asks for all ``n`` samples of its prompt, so
the server computes the shared prompt once. Connection errors and 5xx answers are retried with
exponential backoff (urllib3's ``Retry``); after the last attempt a :class:`ServerError`
names the URL and says how to start a server.

Several URLs are data-parallel replicas of one model: prompt ``i`` goes to replica
``i mod R`` (its seed does not depend on the replica, so outputs do not either), every
adapter is hot-loaded on every replica, and a replica that stays unreachable (or 5xx) after
its retries is dropped for the rest of the run while its prompts are retried on the others;
a ServerError names every URL once none is left. Requests carry ``Authorization: Bearer``
with the API key of a server this process started (:func:`signal_al.generation.server.access.api_key_for`)
or ``$SIGNAL_AL_VLLM_API_KEY``; with ``expected_model`` the served base model is checked.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from signal_al.core.errors import ServerError
from signal_al.generation.backends.base import Completion, GenerationBackend, SamplingParams
from signal_al.generation.server.access import api_key_for, same_model

START_HINT = ("start one with `signal-al serve-generator`, or use `signal-al generate --start-server` "
              "or `--backend transformers`")


class _Replica:
    """One server: its URL and HTTP sessions (completions with retries; adapter management)."""

    def __init__(self, url: str, retry: Retry, parallel: int, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.session = _session(retry, parallel, api_key)
        # Adapter management: no retry on 500, which there means a bad adapter, not a busy server.
        self.admin = _session(retry.new(status_forcelist=(502, 503, 504)), 1, api_key)
        self.failure: str | None = None  # why it was dropped

    def close(self) -> None:
        self.session.close()
        self.admin.close()


class VLLMServerBackend(GenerationBackend):
    """Client of one or several running vLLM servers: completions, health, runtime LoRA loading."""

    name = "vllm-server"

    def __init__(
        self, url: str | Sequence[str], *, model: str | None = None, parallel: int = 16, retries: int = 5,
        backoff: float = 0.5, timeout: float = 300.0, api_key: str | None = None, expected_model: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("VLLMServerBackend needs at least one server URL")
        if len(set(u.rstrip("/") for u in urls)) != len(urls):
            raise ServerError(f"generator.server_urls lists a server twice: {urls}")
        self.parallel = max(1, parallel)
        self.retries = retries
        self.timeout = timeout
        self.expected_model = expected_model
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._model = model
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=retries,
                      backoff_factor=backoff, status_forcelist=(500, 502, 503, 504), allowed_methods=None,
                      raise_on_status=False)
        self.replicas = [_Replica(u, retry, self.parallel, api_key or api_key_for(u)) for u in urls]
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any, log: Callable[[str], None] | None = None) -> "VLLMServerBackend":
        """The client of a GeneratorConfig's servers (``server_urls``, else ``server_url``), checking its model."""
        from signal_al.generation.server.process import server_urls

        return cls(server_urls(config), parallel=config.parallel_requests, retries=config.request_retries,
                   timeout=config.request_timeout, expected_model=config.model, log=log)

    @property
    def url(self) -> str:
        """The first server's URL (the only one for a single server)."""
        return self.replicas[0].url

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    @property
    def live(self) -> list[_Replica]:
        """The replicas not dropped after a failure, in their configured order."""
        return [r for r in self.replicas if r.failure is None]

    # --- HTTP ------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: dict | None = None, timeout: float | None = None, *,
                 admin: bool = False, replica: _Replica | None = None) -> requests.Response:
        """One request with retries; unreachable or still 5xx after the retries: a ServerError naming the URL."""
        replica = replica or self.replicas[0]
        url = f"{replica.url}{path}"
        session = replica.admin if admin else replica.session
        try:
            response = session.request(method, url, json=payload, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            text = str(exc).lower()
            reason = ("connection refused" if "refused" in text else "timed out" if "timeout" in text or
                      "timed out" in text else type(exc).__name__)
            raise _Unavailable(f"could not reach the vLLM server at {url} after {self.retries + 1} attempts "
                               f"({reason}); {START_HINT}") from exc
        if response.status_code >= 500 and not admin:
            raise _Unavailable(f"the vLLM server at {url} answered {response.status_code} after "
                               f"{self.retries + 1} attempts: {response.text[:300]}")
        if response.status_code == 401:
            raise ServerError(f"the vLLM server at {replica.url} refused the request (401 unauthorized): it was "
                              "started with an API key; give the same key to this client in $SIGNAL_AL_VLLM_API_KEY")
        return response

    def _drop(self, replica: _Replica, error: Exception) -> None:
        """Stop using ``replica`` for the rest of the run; a ServerError naming every URL when none is left.

        A single server is never dropped: its error is raised, and the next call tries it again.
        """
        if len(self.replicas) == 1:
            raise error
        with self._lock:
            if replica.failure is None:
                replica.failure = str(error)
                if len(self.replicas) > 1:
                    self.log(f"generator: dropping the vLLM server at {replica.url} ({error}); "
                             f"{len(self.live)} of {len(self.replicas)} left")
            if not self.live:
                failures = "; ".join(f"{r.url}: {r.failure}" for r in self.replicas)
                raise ServerError(f"all {len(self.replicas)} vLLM servers failed: {failures}") from error

    def _on_live(self, call: Callable[[_Replica], Any], start: int = 0) -> Any:
        """``call(replica)`` on the live replica ``start`` mod R, moving on to the next one while they fail."""
        while True:
            live = self.live
            if not live:  # every replica was dropped by another thread
                failures = "; ".join(f"{r.url}: {r.failure}" for r in self.replicas)
                raise ServerError(f"all {len(self.replicas)} vLLM servers failed: {failures}")
            replica = live[start % len(live)]
            try:
                return call(replica)
            except _Unavailable as exc:
                self._drop(replica, exc)

    def health(self) -> bool:
        """True when every live server's ``/health`` answers 200 (a single attempt each, no retries)."""
        try:
            return all(requests.get(f"{r.url}/health", timeout=5).status_code == 200 for r in self.live)
        except requests.RequestException:
            return False

    def check(self) -> None:
        """Raise a ServerError naming the URL unless every server is reachable, healthy and serves the model."""
        for replica in self.replicas:
            try:
                response = self._request("GET", "/health", timeout=10, replica=replica)
            except _Unavailable as exc:
                raise ServerError(str(exc)) from exc
            if response.status_code != 200:
                raise ServerError(f"the vLLM server at {replica.url}/health answered {response.status_code}")
        self.model  # noqa: B018  (checks the served model)

    def _served_models(self, replica: _Replica) -> list[dict]:
        response = self._request("GET", "/v1/models", timeout=30, replica=replica)
        if response.status_code != 200:
            raise ServerError(f"the vLLM server at {replica.url}/v1/models answered {response.status_code}: "
                              f"{response.text[:300]}")
        return response.json()["data"]

    @property
    def model(self) -> str:
        """The served base model's name (the first entry of ``/v1/models`` without a parent).

        With ``expected_model`` (``generator.model``), every server must serve it: a server
        started for another model (or another run's) is a ServerError naming both.
        """
        if self._model is None:
            names = {}
            for replica in list(self.live):
                try:
                    rows = self._served_models(replica)
                except _Unavailable as exc:
                    self._drop(replica, exc)
                    continue
                base = [row for row in rows if not row.get("parent")]
                names[replica.url] = (base or rows)[0]["id"]
            if not names:
                failures = "; ".join(f"{r.url}: {r.failure}" for r in self.replicas)
                raise ServerError(f"all {len(self.replicas)} vLLM servers failed: {failures}")
            if self.expected_model is not None:
                wrong = {u: n for u, n in names.items() if not same_model(n, self.expected_model)}
                if wrong:
                    raise ServerError("the vLLM server " + ", ".join(f"at {u} serves {n!r}" for u, n in wrong.items())
                                      + f", but generator.model is {self.expected_model!r}; point generator.server_url"
                                      " at a server of this model (or start one with --start-server)")
            if len(set(names.values())) > 1:
                raise ServerError(f"the generator servers serve different models: {names}")
            self._model = next(iter(names.values()))
        return self._model

    def adapters(self) -> list[str]:
        """The adapters loaded on the first live server."""
        rows = self._on_live(self._served_models)
        return [row["id"] for row in rows if row.get("parent")]

    # --- generation ------------------------------------------------------------------------------

    def _payload(self, prompt: str, params: SamplingParams, seed: int | None, adapter: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": adapter or self.model, "prompt": prompt, "n": params.n, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "return_token_ids": True,
            # The prompt already has its chat template: no second BOS.
            "add_special_tokens": False,
        }
        if seed is not None:
            payload["seed"] = seed
        if params.logprobs:
            payload["logprobs"] = 0
        if params.ignore_eos:
            payload["ignore_eos"] = True
        return payload

    def _complete(self, payload: dict[str, Any]) -> list[Completion]:
        """The ``n`` completions of one request, in sample order.

        A 400 (the server refused this prompt, e.g. longer than its context) gives ``n``
        empty completions carrying the error, so one bad prompt does not end the run.
        """
        return self._on_live(lambda replica: self._complete_on(replica, payload), payload.get("_replica", 0))

    def _complete_on(self, replica: _Replica, payload: dict[str, Any]) -> list[Completion]:
        body_payload = {k: v for k, v in payload.items() if k != "_replica"}
        response = self._request("POST", "/v1/completions", body_payload, replica=replica)
        if response.status_code == 400:
            return [Completion("", [], [], None, None, error=f"400: {_error_text(response)}")
                    for _ in range(payload["n"])]
        if response.status_code != 200:
            raise ServerError(f"the vLLM server at {replica.url}/v1/completions refused the request "
                              f"({response.status_code}): {response.text[:300]}")
        body = response.json()
        choices = sorted(body["choices"], key=lambda choice: choice.get("index", 0))
        if len(choices) != payload["n"]:
            raise ServerError(f"the vLLM server at {replica.url} returned {len(choices)} completions for "
                              f"n={payload['n']}")
        # Every sample of a request shares its prompt; the server may list the ids once.
        prompt_ids = next((c["prompt_token_ids"] for c in choices if c.get("prompt_token_ids")),
                          body.get("prompt_token_ids") or [])
        completions = []
        for choice in choices:
            logprobs = None
            if choice.get("logprobs"):
                logprobs = [float(x) if x is not None else float("nan")
                            for x in choice["logprobs"]["token_logprobs"]]
            completions.append(Completion(text=choice["text"], token_ids=list(choice.get("token_ids") or []),
                                          prompt_token_ids=list(prompt_ids), finish_reason=choice.get("finish_reason"),
                                          logprobs=logprobs))
        return completions

    def generate(self, prompts: Sequence[str], params: SamplingParams, adapter: str | None = None) -> list[Completion]:
        """One request per prompt (``n`` samples each, seeded ``params.request_seed(i)``), sent in parallel.

        Prompts the server refuses (400) come back as completions with ``error`` set; when
        it refuses every prompt the cause is not the prompts (a bad setting): a ServerError.
        """
        payloads = [self._payload(p, params, params.request_seed(i), adapter) for i, p in enumerate(prompts)]
        if not payloads:
            return []
        for i, payload in enumerate(payloads):  # prompt i goes to replica i mod R (not sent to the server)
            payload["_replica"] = i
        workers = min(self.parallel * len(self.live), len(payloads))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(self._complete, payloads))
        completions = [completion for group in results for completion in group]
        if all(c.error for c in completions):
            raise ServerError(f"the vLLM server at {self.url}/v1/completions refused all {len(payloads)} requests: "
                              f"{completions[0].error}")
        return completions

    # --- adapters --------------------------------------------------------------------------------

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Hot-load a LoRA adapter folder under ``name`` on every live server.

        Loading a name a server already has is accepted: names are unique to an adapter's
        content (:func:`signal_al.generation.generator.adapter_name`), so it is this adapter.
        A server that cannot be reached is dropped (the others serve the adapter); one that
        refuses the adapter is a ServerError (the adapter, not the server, is at fault).
        """
        path = Path(path).absolute()
        if not (path / "adapter_config.json").is_file():
            raise ServerError(f"{path} is not a LoRA adapter folder (no adapter_config.json)")
        for replica in list(self.live):
            try:
                response = self._request("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)},
                                         admin=True, replica=replica)
            except _Unavailable as exc:
                self._drop(replica, exc)
                continue
            if response.status_code == 400 and "already" in response.text.lower():
                continue
            if response.status_code in (502, 503, 504):
                self._drop(replica, _Unavailable(f"the vLLM server at {replica.url} answered {response.status_code}"))
                continue
            if response.status_code != 200:
                raise ServerError(f"the vLLM server at {replica.url} could not load adapter '{name}' from {path} "
                                  f"({response.status_code}): {response.text[:300]}")

    def unload_adapter(self, name: str) -> None:
        for replica in list(self.live):
            response = self._request("POST", "/v1/unload_lora_adapter", {"lora_name": name}, admin=True,
                                     replica=replica)
            if response.status_code not in (200, 404):
                raise ServerError(f"the vLLM server at {replica.url} could not unload adapter '{name}': "
                                  f"{response.text[:300]}")

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()


class _Unavailable(ServerError):
    """A server unreachable or answering 5xx after its retries (another replica may take over)."""


def _error_text(response: requests.Response) -> str:
    """The message of a vLLM error answer (``{"error": {"message": ...}}`` or ``{"message": ...}``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    return str(message or body)[:300]


def _session(retry: Retry, pool_size: int, api_key: str | None = None) -> requests.Session:
    session = requests.Session()
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
