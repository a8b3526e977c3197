"""``signal-al serve-reward``: a run's SIGnAL reward over HTTP (OpenRLHF's remote reward protocol)."""

from __future__ import annotations

import argparse
import os


def cmd_serve_reward(args: argparse.Namespace) -> int:
    from signal_al.integrations.runs import run_config, run_shaping
    from signal_al.reward_server import ServerSettings, serve
    from signal_al.rewards.scorer import SignalScorer

    api_key = args.api_key if args.api_key is not None else os.environ.get("SIGNAL_AL_REWARD_API_KEY") or None
    try:
        settings = ServerSettings(host=args.host, port=args.port, api_key=api_key, max_body_bytes=args.max_body_mb
                                  * 1024 * 1024, max_texts=args.max_texts, max_text_chars=args.max_text_chars,
                                  max_batch_texts=args.max_batch_texts, max_wait_ms=args.max_wait_ms)
    except ValueError as exc:
        from signal_al.errors import ConfigError

        raise ConfigError(str(exc)) from None
    scorer = SignalScorer.from_run(args.run, args.round, device=args.device, batch_size=args.batch_size)
    info = scorer.run
    print(f"round {info.round} of {info.run_dir}: {info.n_labeled} labeled, classifier {info.checkpoint}", flush=True)
    try:
        serve(scorer, settings, info=info, shaping=run_shaping(run_config(info.run_dir)), log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        pass
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve-reward", help="Serve a run's SIGnAL reward over HTTP (OpenRLHF remote reward protocol).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load the run's classifier checkpoint, labeled set and reward config and answer "
        "POST /get_reward {\"query\": [...], \"prompts\": [...], \"labels\": [...]} with "
        "{\"rewards\": [...], \"scores\": [...], \"extra_logs\": {...}} (the completion is query minus its prompt). "
        "GET /health. Concurrent requests are scored in shared classifier batches. Binds to 127.0.0.1 unless --host "
        "says otherwise.",
        epilog="examples:\n  signal-al serve-reward --run runs/demo --port 5000\n"
        "  # OpenRLHF: --remote_rm_url http://127.0.0.1:5000/get_reward\n"
        "  SIGNAL_AL_REWARD_API_KEY=... signal-al serve-reward --run runs/demo --host 0.0.0.0",
    )
    serve.add_argument("--run", required=True, metavar="RUN_DIR", help="The run folder (runs/<name>).")
    serve.add_argument("--round", type=int, default=None, help="Round whose classifier scores (default: the latest).")
    serve.add_argument("--host", default="127.0.0.1", help="Bind address (default: loopback only).")
    serve.add_argument("--port", type=int, default=5000, help="Port (default: 5000).")
    serve.add_argument("--api-key", default=None, help="Require this key ('Authorization: Bearer KEY' or 'X-API-Key'); "
                       "default: $SIGNAL_AL_REWARD_API_KEY, else none.")
    serve.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the run's device).")
    serve.add_argument("--batch-size", type=int, default=None, help="Classifier batch size (default: the run's "
                       "classifier.eval_batch_size).")
    serve.add_argument("--max-batch-texts", type=int, default=1024, help="Texts of concurrent requests scored in "
                       "one classifier call (default: 1024).")
    serve.add_argument("--max-wait-ms", type=float, default=2.0, help="How long a batch waits for more requests.")
    serve.add_argument("--max-texts", type=int, default=4096, help="Most texts per request (default: 4096).")
    serve.add_argument("--max-text-chars", type=int, default=100_000, help="Longest text in characters.")
    serve.add_argument("--max-body-mb", type=float, default=16, help="Largest request body in MiB (default: 16).")
    serve.set_defaults(handler=cmd_serve_reward)


__all__ = ["add_parser", "cmd_serve_reward"]
