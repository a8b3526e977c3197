"""``signal-al check-rl``: does the RL machinery learn here? The positive control, briefly, on your setup."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from signal_al.cli.options import (add_cache_arg, add_config_args, add_config_flag, cache, config_from_args, log,
                                   positive_int)

#: served = trained when the mean |log p_served - log p_trainer| per token stays below this, by the served dtype.
#: Measured with SmolLM2-135M on a CPU vLLM server (tests/test_serving_vllm.py, results/rl-bench/): float32
#: 9e-06 to 1e-05; bfloat16 0.031-0.041 (its rounding); another policy than the trained one 1.06.
PARITY_LIMITS = {"float32": 0.02, "bfloat16": 0.1, "float16": 0.1}


def parity_limit(served_dtype: str) -> float:
    """The served-vs-trained log-prob limit for a server computing in ``served_dtype``.

    >>> parity_limit("float32"), parity_limit("bfloat16")
    (0.02, 0.1)
    """
    return PARITY_LIMITS[served_dtype]

DESCRIPTION = """\
Runs the positive control of the generator's RL on your server, model and task, and says in a few
lines whether it works here:

1. served = trained: the log-probs the generation backend sampled each token with, against the
   trainer's recomputation of the same tokens (a served adapter that is not the trained one, or
   another kernel that differs, shows here);
2. the reward rose: the generator is trained for --iterations updates to write text of
   --target-class (reward: the task's model annotator's probability of that class), then the base
   model and the adapter answer the same held-out prompts; the paired gain with its 95 % interval.

Exit 0 when both hold, 1 when one does not (the figures say which), 2 on bad input (no server, a
server of another model, a port in use, an unknown class). The default size takes about 5 minutes
on 2 CPU cores once the model annotator is cached (its first training adds a minute or two).
It uses the config's generator (model, backend, server) and task."""

EPILOG = """\
examples:
  signal-al check-rl --start-server                      # start a vLLM CPU server for the check
  signal-al check-rl --server-url http://127.0.0.1:8000  # a server you started (signal-al serve-generator)
  signal-al check-rl -c my_run.yaml --target-class negative --out check-rl/"""


def cmd_check_rl(args: argparse.Namespace) -> int:
    from signal_al.experiments.rl_bench import RLBench, RLBenchConfig

    from signal_al.core.errors import ServerError, UserError
    from signal_al.data import load_task

    config = config_from_args(args)
    g = config.generator
    # Fail fast, in one line, before the annotator trains or any model loads: the server, the port, the class.
    if g.backend == "vllm-server" and g.start_server:
        from signal_al.generation.server.access import port_is_free, server_host_port

        host, port = server_host_port(g.server_url)
        if not port_is_free(host, port):
            raise ServerError(f"--server-url: port {port} on {host} is already in use, and --start-server starts a "
                              f"server there; choose a free port, or drop --start-server to use the server there")
    elif g.backend == "vllm-server":
        from signal_al.generation.backends.server import VLLMServerBackend

        VLLMServerBackend(g.server_url, retries=1, expected_model=g.model).check()
    data_names = load_task(config.data, cache_root=cache(args)).spec.label_names
    if args.target_class is not None and args.target_class not in data_names:
        raise UserError(f"--target-class {args.target_class!r}: not a label of {config.data.task} "
                        f"({', '.join(map(str, data_names))})")
    target = args.target_class or data_names[-1]
    bench = RLBenchConfig(
        reward="classprob", seed=config.seed, task=config.data.task, iterations=args.iterations, prompts=args.prompts,
        samples=args.samples, heldout=args.heldout, heldout_per_prompt=4, target_class=target,
        generator=g.model, classifier=config.classifier.model, backend=g.backend, server_url=g.server_url,
        start_server=g.start_server, max_new_tokens=min(g.max_new_tokens, 40), temperature=g.temperature or 1.0, dtype=g.dtype,
        learning_rate=args.lr, kl_coef=config.ppo.kl_coef, advantage="rloo", epochs=1, minibatches=2,
        annotator_max_steps=args.annotator_steps, measure_signal=False)
    from signal_al.generation.dtypes import resolve_generator_dtype

    served_dtype = resolve_generator_dtype(g.dtype, "cpu" if g.backend == "vllm-server" else config.device)
    limit = parity_limit(served_dtype)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="check-rl-"))
    start = time.perf_counter()
    runner = RLBench(bench, out, log=log, cache_root=cache(args))
    row = runner.run()
    served = [r["served_logprob_mae"] for r in runner.rows if r.get("served_logprob_mae") is not None]
    parity_ok = bool(served) and max(served) < limit
    rose = (row.get("gain") or 0) > 0 and (row.get("paired_z") or 0) >= 2.0
    print(f"served = trained: mean |log p_served - log p_trainer| per token {max(served):.1e} (worst of "
          f"{len(served)} updates): {'OK' if parity_ok else 'MISMATCH'} (limit {limit} for a {served_dtype} server, "
          f"generator.dtype {g.dtype})"
          if served else "served = trained: not measured (the backend returned no log-probs)")
    lo, hi = row.get("gain_lo"), row.get("gain_hi")
    interval = f" [95 % CI {lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
    print(f"reward P({target}) on {row.get('paired_n')} held-out samples: base {row.get('reward_base', 0):.3f} -> "
          f"trained {row.get('reward_adapter', 0):.3f}, gain {row.get('gain', 0):+.3f}{interval}, "
          f"z {row.get('paired_z') or 0:.1f}: {'ROSE' if rose else 'DID NOT RISE'}")
    print(f"KL(trained || base) {row.get('kl') or 0:.3f} on its own samples; words {row.get('words_base') or 0:.1f} -> "
          f"{row.get('words_trained') or 0:.1f}; {bench.iterations} updates in {time.perf_counter() - start:.0f} s; "
          f"raw record: {out}")
    return 0 if parity_ok and rose else 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check-rl", help="Check that the generator's RL learns here (a brief positive control).",
                                formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION,
                                epilog=EPILOG)
    add_config_flag(check, "data.task", "--task")
    add_config_flag(check, "generator.model", "--model")
    add_config_flag(check, "generator.backend", "--backend")
    add_config_flag(check, "generator.server_url", "--server-url")
    add_config_flag(check, "generator.start_server", "--start-server", action="store_true")
    add_config_flag(check, "seed", "--seed")
    check.add_argument("--target-class", metavar="LABEL", help="The class the generator learns to write "
                       "(default: the task's last label, e.g. 'positive').")
    check.add_argument("--iterations", type=positive_int, default=4, help="Updates (default 4).")
    check.add_argument("--prompts", type=positive_int, default=16, help="Training prompts per update (default 16).")
    check.add_argument("--samples", type=positive_int, default=4, help="Samples per prompt, a group (default 4).")
    check.add_argument("--heldout", type=positive_int, default=160, help="Held-out samples per side (default 160).")
    check.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate (default 1e-3, the controls' in "
                       "results/rl-bench/).")
    check.add_argument("--annotator-steps", type=positive_int, default=300,
                       help="Training steps of the model annotator that gives the reward (cached; default 300).")
    check.add_argument("--out", metavar="DIR", help="Keep the raw record (config, metrics.jsonl, samples) here.")
    add_config_args(check)
    add_cache_arg(check)
    check.set_defaults(handler=cmd_check_rl)


__all__ = ["add_parser", "cmd_check_rl"]
