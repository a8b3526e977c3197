"""The launch scripts: syntax, argument handling, gpu_check's dry run (fast) and the multi-GPU script's CPU form
running a 2-round SIGnAL job end to end with a real vLLM server and a 2-process PPO update (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


@pytest.mark.parametrize("script", ["launch_multi_gpu.sh", "launch_ppo.sh", "gpu_check.sh"])
def test_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPTS / script)]).returncode == 0


def test_gpu_check_dry_run_plans_every_check_and_starts_nothing(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path / "gc")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for check in ("server", "ppo_bf16", "qlora", "faiss", "signal", "throughput"):
        assert f"  {check} " in result.stdout
    assert "budget 480s" in result.stdout and "dry run: nothing started" in result.stdout
    assert not (tmp_path / "gc").exists()
    bad = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--dry-run", "--only", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown check nope" in bad.stderr


def _carry(folder: Path) -> Path:
    """What `gpu_tiny.py pack` writes, without the wheels (this environment has those packages)."""
    import shutil

    from helpers import ready_asset

    sys.path.insert(0, str(SCRIPTS))
    import gpu_tiny

    for asset, files, target in (("smollm2-135m-instruct", gpu_tiny.GENERATOR_FILES, "smollm2"),
                                 ("minilm-l6", gpu_tiny.CLASSIFIER_FILES, "minilm")):
        (folder / target).mkdir(parents=True)
        for file in files:
            if (ready_asset(asset) / file).is_file():
                shutil.copy2(ready_asset(asset) / file, folder / target / file)
    shutil.copytree(ready_asset("vader-corpora"), folder / "vader-corpora")
    return folder


def test_gpu_check_tiny_dry_run_plans_the_tiny_checks_and_names_what_is_missing(tmp_path: Path) -> None:
    carry = _carry(tmp_path / "carry")
    command = ["bash", str(SCRIPTS / "gpu_check.sh"), "--tiny", "--dry-run", "--python", sys.executable,
               "--out", str(tmp_path / "gc")]
    result = subprocess.run([*command, "--carry", str(carry)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for check in ("missing", "ppo", "persist", "classifier", "generation", "parity", "signal", "fsdp"):
        assert f"  {check} " in result.stdout
    assert "budget 360s" in result.stdout and "dry run: nothing started" in result.stdout
    assert "python module vllm:" in result.stdout and "python module bitsandbytes:" in result.stdout
    assert not (tmp_path / "gc").exists()
    empty = subprocess.run([*command, "--carry", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert empty.returncode == 1 and "gpu_tiny.py pack" in empty.stdout
    for args, message in ((["--only", "server"], "unknown tiny check server"),
                          (["--device", "tpu"], "--device must be cuda or cpu")):
        bad = subprocess.run([*command, "--carry", str(carry), *args], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


@pytest.mark.slow
def test_gpu_check_tiny_checks_run_on_the_cpu(tmp_path: Path) -> None:
    """The tiny mode's builder and two of its checks, on the CPU (the GPU machine runs all of them)."""
    carry = _carry(tmp_path / "carry")
    out = tmp_path / "gc"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--tiny", "--device", "cpu", "--python",
                             sys.executable, "--carry", str(carry), "--out", str(out), "--only", "persist,parity",
                             "--budget", "600"], capture_output=True, text=True, timeout=700, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    table = (out / "gpu_check.md").read_text()
    assert "| persist | PASS |" in table and "max_abs_gap=0.00e+00" in table
    assert "| parity | PASS |" in table and "tiny mode on cpu" in table


def test_launch_multi_gpu_rejects_bad_arguments(tmp_path: Path) -> None:
    script = str(SCRIPTS / "launch_multi_gpu.sh")
    cases = [([], "--config is required"), (["-c", str(tmp_path / "none.yaml")], "no config file"),
             (["-c", str(ROOT / "configs/demo.yaml"), "--bogus"], "unknown argument --bogus"),
             (["-c", str(ROOT / "configs/demo.yaml"), "--cpu", "--train-processes", "0"], "must be positive")]
    for args, message in cases:
        result = subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def _tiny_llama(folder: Path) -> Path:
    """A 2-layer random Llama (head_dim 64) with SmolLM2's tokenizer: the smallest generator the vLLM CPU server
    serves with LoRA (the conftest's tiny Qwen2 has head_dim 16 and no chat template)."""
    import torch
    from helpers import ready_asset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ready_asset("smollm2-135m-instruct"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_launch_multi_gpu_cpu_form_runs_signal_resumes_and_cleans_up(tmp_path: Path, tiny_classifier_dir) -> None:
    from signal_al.generation.server.access import free_port, port_is_free

    generator = _tiny_llama(tmp_path / "tiny-llama")
    config = {
        "name": "launch", "output_dir": str(tmp_path / "runs"), "seed": 0, "device": "cpu",
        "data": {"task": "rt-movies", "pool_size": 20, "max_test_size": 20},
        "classifier": {"model": str(tiny_classifier_dir), "max_length": 32, "batch_size": 8, "epochs": 1,
                       "min_steps": 2, "eval_batch_size": 64},
        "generator": {"model": str(generator), "dtype": "float32", "candidates_per_round": 4, "max_new_tokens": 16,
                      "min_words": 1, "max_model_len": 512},
        "active_learning": {"strategy": "signal", "round_fraction": 0.1, "stop_fraction": 0.2,
                            "annotator": "model", "annotator_max_steps": 2},
        "reward": {"k": 2},
        "ppo": {"num_ppo_epochs": 1, "per_device_train_batch_size": 1, "learning_rate": 1e-4},
    }
    path = tmp_path / "launch.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "SIGNAL_AL": str(Path(sys.executable).parent
                                                                                          / "signal-al")}
    env.pop("SIGNAL_AL_VLLM_API_KEY", None)
    command = ["bash", str(SCRIPTS / "launch_multi_gpu.sh"), "-c", str(path), "--cpu", "--train-processes", "2",
               "--port", str(port)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "launch"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[1].get("adapter") == "adapters/round-001"
    assert (run_dir / "adapters" / "round-001" / "adapter_model.safetensors").is_file()
    log = (run_dir / "rl" / "round-001.log").read_text()
    assert "accelerate" in log and "--num_processes 2" in log  # the update ran as a 2-process job
    server_log = Path(f"{run_dir}.vllm-server.log").read_text()
    assert "load_lora_adapter" in server_log or "round-1-" in server_log  # hot-loaded for the next round
    # cleanup: the server is gone with the script
    assert port_is_free("127.0.0.1", port) and not Path(f"{run_dir}.vllm-server.pid").exists()

    again = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # a finished run stays finished
    assert port_is_free("127.0.0.1", port) and not Path(f"{run_dir}.vllm-server.pid").exists()
