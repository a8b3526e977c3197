"""Worker for the multi-process PPO test: `accelerate launch --config_file C tests/ppo_dist_worker.py ARGS`.

Trains on a D_RL with the given global batch and writes, per rank, the loss curve and a hash
of the trained LoRA + value-head weights to OUT/rank<r>.json (the main process also saves the
adapter to OUT/adapter).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from signal_al.trainers.ppo_config import PPOConfig  # noqa: E402
from signal_al.trainers.accelerator import make_accelerator, trainable_state_dict  # noqa: E402
from signal_al.trainers.ppo_trainer import PPOTrainer  # noqa: E402
from signal_al.trainers.rollouts import read_rollouts  # noqa: E402


def main(model: str, rl_data: str, out: str, config_json: str) -> None:
    torch.set_num_threads(1)
    config = PPOConfig(**json.loads(config_json))
    # FSDP on CPU when launched with configs/accelerate/fsdp.yaml, else DDP over gloo
    accelerator = make_accelerator(config.gradient_accumulation_steps, cpu=True)
    trainer = PPOTrainer(model, config, accelerator=accelerator)
    metrics = trainer.train(read_rollouts(rl_data))
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    named = sorted(trainable_state_dict(unwrapped).items())  # gathered from the shards under FSDP
    digest = hashlib.sha256(b"".join(p.numpy().tobytes() for _, p in named)).hexdigest()
    weights = {n: p.flatten()[:8].tolist() for n, p in named}
    rank = trainer.accelerator.process_index
    # FSDP2 shards every wrapped parameter as a DTensor; DDP keeps plain tensors.
    sharded = any(type(p).__name__ == "DTensor" for p in trainer.model.parameters())
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": trainer.accelerator.num_processes, "hash": digest, "weights": weights,
        "losses": [h["loss"] for h in metrics["history"]], "kl_served_k3": metrics["kl_served_k3"],
        "distributed_type": str(trainer.accelerator.distributed_type), "sharded": sharded,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
    }))
    trainer.save(Path(out) / "adapter", metrics, overwrite=True)
    trainer.accelerator.end_training()  # tear the process group down before exit (no gloo threads left)


if __name__ == "__main__":
    main(*sys.argv[1:5])
