"""Two CPU processes (gloo) give the same adapter on both ranks and the loss curve of one process,
with DDP (configs/accelerate/cpu_2proc.yaml) and with FSDP2 sharding (configs/accelerate/fsdp.yaml).

DeepSpeed ZeRO-2/3 is not run here: DeepSpeed is not installed in the CPU environment, and its
CPU accelerator needs intel-extension-for-pytorch and oneCCL, whose newest builds pin torch 2.8
(this project runs torch 2.13)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from helpers import ready_asset  # noqa: F401  (offline hub settings)
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.ppo_trainer import PPOTrainer
from signal_al.trainers.rollouts import write_rollouts
from test_ppo import grouped_rollouts, make_rollouts, make_tiny_qwen2

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("setup,advantage", [("cpu_2proc", "gae"), ("cpu_2proc", "grpo"), ("fsdp", "gae"),
                                             ("fsdp", "grpo")])
def test_two_cpu_processes_match_one_process(tmp_path, setup, advantage):
    """grpo runs on groups sharing prompts (shared prompt forward, D_RL-wide advantages, a dummy micro-batch).

    FSDP runs without the shared prompt forward: backward through a prompt cache computed in
    another forward fails once FSDP has resharded that forward's parameters.
    """
    model = make_tiny_qwen2(tmp_path / "qwen2")
    rollouts = make_rollouts(16) if advantage == "gae" else grouped_rollouts()
    data = write_rollouts(tmp_path / "d_rl.jsonl", rollouts)
    # global minibatch 4 both ways: 2 processes x 2 per device, or 1 process x 4 per device
    two = PPOConfig(learning_rate=1e-3, per_device_train_batch_size=2, num_mini_batches=2, num_ppo_epochs=2,
                    advantage=advantage, share_prompt_forward=setup != "fsdp")
    one = PPOConfig(**{**asdict(two), "per_device_train_batch_size": 4})

    out = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # the shipped configs as they are; fsdp.yaml is written for 8 bf16 GPUs
    overrides = ["--num_processes", "2", "--mixed_precision", "no"] if setup == "fsdp" else []
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / f"configs/accelerate/{setup}.yaml"), *overrides, "--main_process_port", str(_free_port()),
               str(ROOT / "tests/ppo_dist_worker.py"), str(model), str(data), str(out), json.dumps(asdict(two))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert {r["backend"] for r in ranks} == {"gloo"}
    if setup == "fsdp":  # really sharded, not accelerate's silent DDP fallback on CPU
        assert all(r["sharded"] for r in ranks)  # parameters are FSDP2 DTensor shards
    assert ranks[0]["hash"] == ranks[1]["hash"]  # same adapter and value head on both ranks
    assert ranks[0]["losses"] == ranks[1]["losses"]  # metrics are reduced, not per-rank
    assert (out / "adapter" / "adapter_model.safetensors").is_file()  # the main process wrote it
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = PPOTrainer(model, one, cpu=True)
        from signal_al.trainers.rollouts import read_rollouts

        metrics = trainer.train(read_rollouts(data))
    finally:
        torch.set_num_threads(threads)
    losses = [h["loss"] for h in metrics["history"]]
    assert len(losses) == len(ranks[0]["losses"]) == 8
    assert ranks[0]["losses"] == pytest.approx(losses, abs=1e-5)
    params = {n: p.detach().flatten()[:8].tolist() for n, p in trainer.model.named_parameters() if p.requires_grad}
    for name, values in ranks[0]["weights"].items():
        assert values == pytest.approx(params[name], abs=1e-5), name
    # the adapter file the job saved is whole (gathered from the shards under FSDP) and is the plain
    # LoRA vLLM hot-loads: every saved tensor equals the one-process model's full parameter
    from safetensors.torch import load_file

    from signal_al.trainers.adapter_io import check_vllm_loadable

    check_vllm_loadable(json.loads((out / "adapter" / "adapter_config.json").read_text()), where="fsdp adapter")
    saved = load_file(out / "adapter" / "adapter_model.safetensors")
    full = {n: p.detach() for n, p in trainer.model.named_parameters() if p.requires_grad and "lora_" in n}
    assert len(saved) == len(full) > 0
    for name, tensor in saved.items():
        match = [p for n, p in full.items() if n.endswith(name.replace(".weight", ".default.weight"))]
        assert len(match) == 1 and tensor.shape == match[0].shape, name
        assert torch.allclose(tensor.float(), match[0].float(), atol=1e-5), name
