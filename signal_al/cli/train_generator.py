"""``signal-al train-generator``: one RL update of the generator's LoRA adapter on a D_RL file."""

from __future__ import annotations

import argparse
import os

from signal_al.cli.options import add_config_args, add_config_flag, config_from_args, output_folder

DESCRIPTION = """\
Run one PPO (default) or TRL GRPO replay update of the generator on stored rollouts and write a new LoRA
adapter folder that vLLM hot-loads, with ppo_state.json and metrics.json (PPO: also value_head.safetensors).
The input is a D_RL JSONL file, one rollout a line: prompt_token_ids, completion_token_ids, reward, and
optionally prompt, completion and metadata. Hyper-parameters come from the config's ppo section (and, with
--trainer grpo, its grpo section).

A SIGnAL run does this itself at the end of every round N: it writes D_RL to RUN_DIR/rl/round-NNN.jsonl and
trains RUN_DIR/adapters/round-NNN from round N-1's adapter, with the run's config RUN_DIR/config.yaml; this
command replays or varies such an update. Write the new adapter outside RUN_DIR/adapters/ (the run owns that
folder), e.g. RUN_DIR/replay/, and compare it with `signal-al evaluate-generator RUN_DIR --adapters ...`.

Multi-GPU: prefix with `accelerate launch --config_file configs/accelerate/<setup>.yaml -m signal_al.cli`
(scripts/launch_ppo.sh); a run does so itself with ppo.launcher: accelerate."""

EPILOG = """\
examples:
  # replay round 2 of runs/demo from its round-1 adapter
  signal-al train-generator -c runs/demo/config.yaml --rl-data runs/demo/rl/round-002.jsonl \\
      --adapter runs/demo/adapters/round-001 --out runs/demo/replay/round-002
  # the same update with TRL's GRPO, then compare both with the run's own adapter
  signal-al train-generator -c runs/demo/config.yaml --rl-data runs/demo/rl/round-002.jsonl \\
      --adapter runs/demo/adapters/round-001 --out runs/demo/replay/round-002-grpo --trainer grpo
  signal-al evaluate-generator runs/demo --adapters adapters/round-002 replay/round-002 replay/round-002-grpo"""


def cmd_train_generator(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    base = args.model or config.generator.model
    if args.trainer == "grpo":
        from signal_al.trainers.grpo_trainer import train_generator_grpo

        metrics = train_generator_grpo(base, args.out, config.ppo, config.grpo, rl_data=args.rl_data,
                                       adapter=args.adapter, overwrite=args.overwrite)
    else:
        from signal_al.trainers.ppo_trainer import train_generator

        metrics = train_generator(base, args.rl_data, args.out, config.ppo, adapter=args.adapter,
                                  overwrite=args.overwrite, log=lambda msg: print(msg, flush=True))
    if int(os.environ.get("RANK", "0")) == 0:
        keys = ("optimizer_steps", "reward_mean", "kl_final", "policy_loss", "value_loss", "tokens_per_second")
        summary = ", ".join(f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), (int, float)))
        print(f"adapter written to {args.out} ({summary})")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train-generator", help="One RL update of the generator's LoRA adapter on a D_RL file.",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION, epilog=EPILOG,
    )
    add_config_args(train)
    train.add_argument("--rl-data", required=True, metavar="FILE",
                       help="D_RL JSONL file of stored rollouts (a run's: RUN_DIR/rl/round-NNN.jsonl).")
    train.add_argument("--out", required=True, metavar="DIR", type=output_folder, help="New adapter folder (must not exist or be empty).")
    train.add_argument("--adapter", metavar="DIR", help="Previous round's adapter to continue from (a run's: "
                       "RUN_DIR/adapters/round-NNN; default: a new one).")
    train.add_argument("--model", metavar="NAME_OR_DIR", help="Base model (default: the config's generator.model).")
    train.add_argument("--trainer", choices=("ppo", "grpo"), default="ppo",
                       help="ppo: our PPO with a value head; grpo: trl.GRPOTrainer replaying the rollouts.")
    add_config_flag(train, "grpo.num_generations", "--num-generations")
    train.add_argument("--overwrite", action="store_true", help="Replace a non-empty --out folder.")
    train.set_defaults(handler=cmd_train_generator)


__all__ = ["add_parser", "cmd_train_generator"]
