"""Generation through a vLLM OpenAI-compatible server over HTTP (the default backend).

The server may run in another environment or on other GPUs; the trainer only needs its
URL. Requests go out in parallel (vLLM batches concurrent requests), one prompt each so
that prompt ``i`` gets its own seed; a request asks for all ``n`` samples of its prompt, so
the server computes the shared prompt once. Connection errors and 5xx answers are retried with
exponential backoff (urllib3's ``Retry``); after the last attempt a :class:`ServerError`
names the URL and says how to start a server.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from signal_al.generation.backends.base import Completion, GenerationBackend, SamplingParams
from signal_al.errors import ServerError

START_HINT = ("start one with `signal-al serve-generator`, or use `signal-al generate --start-server` "
              "or `--backend transformers`")


class VLLMServerBackend(GenerationBackend):
    """Client of a running vLLM server: completions, health, runtime LoRA loading."""

    name = "vllm-server"

    def __init__(
        self, url: str, *, model: str | None = None, parallel: int = 16, retries: int = 5, backoff: float = 0.5,
        timeout: float = 300.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.parallel = max(1, parallel)
        self.retries = retries
        self.timeout = timeout
        self._model = model
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=retries,
                      backoff_factor=backoff, status_forcelist=(500, 502, 503, 504), allowed_methods=None,
                      raise_on_status=False)
        self.session = _session(retry, self.parallel)
        # Adapter management: no retry on 500, which there means a bad adapter, not a busy server.
        self._admin = _session(retry.new(status_forcelist=(502, 503, 504)), 1)

    # --- HTTP ------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: dict | None = None, timeout: float | None = None, *,
                 admin: bool = False) -> requests.Response:
        """One request with retries; unreachable or still 5xx after the retries: a ServerError naming the URL."""
        url = f"{self.url}{path}"
        session = self._admin if admin else self.session
        try:
            response = session.request(method, url, json=payload, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            text = str(exc).lower()
            reason = ("connection refused" if "refused" in text else "timed out" if "timeout" in text or
                      "timed out" in text else type(exc).__name__)
            raise ServerError(f"could not reach the vLLM server at {url} after {self.retries + 1} attempts "
                              f"({reason}); {START_HINT}") from exc
        if response.status_code >= 500 and not admin:
            raise ServerError(f"the vLLM server at {url} answered {response.status_code} after "
                              f"{self.retries + 1} attempts: {response.text[:300]}")
        return response

    def health(self) -> bool:
        """True when ``/health`` answers 200 (a single attempt, no retries)."""
        try:
            return requests.get(f"{self.url}/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def check(self) -> None:
        """Raise a ServerError naming the URL unless the server is reachable and healthy."""
        response = self._request("GET", "/health", timeout=10)
        if response.status_code != 200:
            raise ServerError(f"the vLLM server at {self.url}/health answered {response.status_code}")

    @property
    def model(self) -> str:
        """The served base model's name (the first entry of ``/v1/models`` without a parent)."""
        if self._model is None:
            rows = self._request("GET", "/v1/models", timeout=30).json()["data"]
            base = [row for row in rows if not row.get("parent")]
            self._model = (base or rows)[0]["id"]
        return self._model

    def adapters(self) -> list[str]:
        rows = self._request("GET", "/v1/models", timeout=30).json()["data"]
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
        response = self._request("POST", "/v1/completions", payload)
        if response.status_code == 400:
            return [Completion("", [], [], None, None, error=f"400: {_error_text(response)}")
                    for _ in range(payload["n"])]
        if response.status_code != 200:
            raise ServerError(f"the vLLM server at {self.url}/v1/completions refused the request "
                              f"({response.status_code}): {response.text[:300]}")
        body = response.json()
        choices = sorted(body["choices"], key=lambda choice: choice.get("index", 0))
        if len(choices) != payload["n"]:
            raise ServerError(f"the vLLM server at {self.url} returned {len(choices)} completions for n={payload['n']}")
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
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(payloads))) as pool:
            results = list(pool.map(self._complete, payloads))
        completions = [completion for group in results for completion in group]
        if all(c.error for c in completions):
            raise ServerError(f"the vLLM server at {self.url}/v1/completions refused all {len(payloads)} requests: "
                              f"{completions[0].error}")
        return completions

    # --- adapters --------------------------------------------------------------------------------

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Hot-load a LoRA adapter folder under ``name``; loading the same name again is a no-op."""
        path = Path(path).absolute()
        if not (path / "adapter_config.json").is_file():
            raise ServerError(f"{path} is not a LoRA adapter folder (no adapter_config.json)")
        response = self._request("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)},
                                 admin=True)
        if response.status_code == 400 and "already" in response.text.lower():
            return
        if response.status_code != 200:
            raise ServerError(f"the vLLM server at {self.url} could not load adapter '{name}' from {path} "
                              f"({response.status_code}): {response.text[:300]}")

    def unload_adapter(self, name: str) -> None:
        response = self._request("POST", "/v1/unload_lora_adapter", {"lora_name": name}, admin=True)
        if response.status_code not in (200, 404):
            raise ServerError(f"the vLLM server at {self.url} could not unload adapter '{name}': {response.text[:300]}")

    def close(self) -> None:
        self.session.close()
        self._admin.close()


def _error_text(response: requests.Response) -> str:
    """The message of a vLLM error answer (``{"error": {"message": ...}}`` or ``{"message": ...}``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    return str(message or body)[:300]


def _session(retry: Retry, pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
