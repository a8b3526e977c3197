"""``signal-al serve-reward``: a run's SIGnAL reward over HTTP (OpenRLHF's remote reward protocol)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from signal_al.cli.options import device, non_negative_float, non_negative_int, port, positive_float, positive_int
from signal_al.core.errors import ConfigError, warn

#: The reward service's API key comes from this variable or from --api-key-file, never from the command line.
API_KEY_ENV = "SIGNAL_AL_REWARD_API_KEY"


def read_api_key(path: str | None) -> str | None:
    """The API key: the first line of ``path`` (``--api-key-file``), else ``$SIGNAL_AL_REWARD_API_KEY``, else None.

    A key file that others may read gets a warning (like ssh's private keys, it should be ``chmod 600``).
    """
    if path is None:
        return os.environ.get(API_KEY_ENV) or None
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--api-key-file {path}: {'is a folder' if file.is_dir() else 'no such file'}")
    try:
        key = file.read_text(encoding="utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"--api-key-file {path}: not UTF-8 text") from None
    if not key or not key[0].strip():
        raise ConfigError(f"--api-key-file {path}: the file is empty; write the key on its first line")
    if file.stat().st_mode & 0o077:
        warn(f"--api-key-file {path}: other users may read this key file (mode {file.stat().st_mode & 0o777:o}); "
             f"chmod 600 {path}")
    return key[0].strip()


def _key_on_the_command_line(text: str) -> str:
    raise argparse.ArgumentTypeError(f"a key on the command line is visible to every user of this machine (in `ps`); "
                                     f"write it to a file and pass --api-key-file FILE, or set ${API_KEY_ENV}")


def cmd_serve_reward(args: argparse.Namespace) -> int:
    from signal_al.core.runtime import resolve_device
    from signal_al.generation.server.access import bind_listening_socket
    from signal_al.integrations.reward_server import ServerSettings

    if args.device is not None:
        resolve_device(args.device, setting="--device")  # a device this machine lacks fails before the port is taken
    settings = ServerSettings(host=args.host, port=args.port, api_key=read_api_key(args.api_key_file),
                              max_body_bytes=int(args.max_body_mb * 1024 * 1024) or 1, max_texts=args.max_texts,
                              max_text_chars=args.max_text_chars, max_batch_texts=args.max_batch_texts,
                              max_wait_ms=args.max_wait_ms)
    sock = bind_listening_socket(settings.host, settings.port)  # a taken port fails here, before the model loads
    try:
        from signal_al.integrations.reward_server import serve
        from signal_al.integrations.runs import run_shaping
        from signal_al.rewards.scorer import SignalScorer

        scorer = SignalScorer.from_run(args.run, args.round, device=args.device, batch_size=args.batch_size,
                                       device_setting="--device")
        info = scorer.run
        print(f"round {info.round} of {info.run_dir}: {info.n_labeled} labeled, classifier {info.checkpoint}",
              flush=True)
        serve(scorer, settings, info=info, shaping=run_shaping(info.run_dir),
              log=lambda m: print(m, flush=True), sock=sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve-reward", help="Serve a run's SIGnAL reward over HTTP (OpenRLHF remote reward protocol).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load the run's classifier checkpoint, labeled set and reward config and answer "
        "POST /get_reward {\"query\": [...], \"prompts\": [...], \"labels\": [...]} with "
        "{\"rewards\": [...], \"scores\": [...], \"extra_logs\": {...}} (the completion is query minus its prompt). "
        "GET /health. Concurrent requests are scored in shared classifier batches. Binds to 127.0.0.1 unless --host "
        "says otherwise; the port is bound before the model loads. A request error is a 4xx with a JSON body and "
        "one log line. The API key comes from --api-key-file or $" + API_KEY_ENV + ", never from the command "
        "line (where every user of the machine sees it in `ps`).",
        epilog="examples:\n  signal-al serve-reward --run runs/demo --port 5000\n"
        "  # OpenRLHF: --remote_rm_url http://127.0.0.1:5000/get_reward\n"
        "  signal-al serve-reward --run runs/demo --host 0.0.0.0 --api-key-file ~/.signal-al-reward-key\n"
        f"  {API_KEY_ENV}=... signal-al serve-reward --run runs/demo --host 0.0.0.0",
    )
    serve.add_argument("--run", required=True, metavar="RUN_DIR", help="The run folder (runs/<name>).")
    serve.add_argument("--round", type=non_negative_int, default=None,
                       help="Round whose classifier scores (default: the latest).")
    serve.add_argument("--host", default="127.0.0.1", help="Bind address (default: loopback only).")
    serve.add_argument("--port", type=port, default=5000, help="Port, 1 to 65535 (default: 5000).")
    serve.add_argument("--api-key-file", metavar="FILE",
                       help="Require the key on this file's first line ('Authorization: Bearer KEY' or 'X-API-Key'); "
                       f"default: ${API_KEY_ENV}, else no key. Keep the file chmod 600.")
    serve.add_argument("--api-key", type=_key_on_the_command_line, help=argparse.SUPPRESS)
    serve.add_argument("--device", type=device, default=None,
                       help="auto, cpu, cuda or cuda:N (default: the run's device).")
    serve.add_argument("--batch-size", type=positive_int, default=None, help="Classifier batch size (default: the "
                       "run's classifier.eval_batch_size).")
    serve.add_argument("--max-batch-texts", type=positive_int, default=1024, help="Texts of concurrent requests "
                       "scored in one classifier call (default: 1024).")
    serve.add_argument("--max-wait-ms", type=non_negative_float, default=2.0,
                       help="How long a batch waits for more requests (default: 2).")
    serve.add_argument("--max-texts", type=positive_int, default=4096, help="Most texts per request (default: 4096).")
    serve.add_argument("--max-text-chars", type=positive_int, default=100_000,
                       help="Longest text in characters (default: 100000).")
    serve.add_argument("--max-body-mb", type=positive_float, default=16,
                       help="Largest request body in MiB (default: 16).")
    serve.set_defaults(handler=cmd_serve_reward)


__all__ = ["API_KEY_ENV", "add_parser", "cmd_serve_reward", "read_api_key"]
