"""Run one generator update as an ``accelerate launch ... signal-al train-generator`` job.

The loop uses this when ``ppo.launcher: accelerate``: the update then runs on the GPUs the
vLLM server does not hold (``ppo.gpu_ids``), with any accelerate setup (DDP, DeepSpeed,
FSDP). The job reads the run's own config file, so its hyper-parameters are the run's;
its output goes to a log file next to D_RL and its metrics come back from the adapter
folder, exactly as the in-process update returns them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from signal_al.core.errors import UserError
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.accelerator import make_accelerator, trainable_state_dict  # noqa: F401 (re-exported)
from signal_al.trainers.adapter_io import METRICS_FILE


def launch_command(config_file: Path, base_model: str | Path, rl_data: Path, out_dir: Path, ppo: PPOConfig, *,
                   adapter: Path | None, main_process_port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command line of one update (``ppo.seed``/``temperature`` passed as overrides)."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if ppo.accelerate_config:
        path = Path(ppo.accelerate_config)
        if not path.is_file():
            raise UserError(f"ppo.accelerate_config: no such file {path}")
        command += ["--config_file", str(path)]
    if ppo.num_processes is not None:
        command += ["--num_processes", str(ppo.num_processes)]
    if main_process_port is not None:
        command += ["--main_process_port", str(main_process_port)]
    command += ["-m", "signal_al.cli", "train-generator", "--config", str(config_file),
                "--model", str(base_model), "--rl-data", str(rl_data), "--out", str(out_dir), "--overwrite",
                "--set", f"ppo.seed={ppo.seed}", "--set", f"ppo.temperature={ppo.temperature!r}",
                "--set", "ppo.launcher=in-process"]
    if adapter is not None:
        command += ["--adapter", str(adapter)]
    return command


def run_update_job(command: list[str], out_dir: Path, log_file: Path, ppo: PPOConfig) -> dict:
    """Run the job (output appended to ``log_file``); its metrics, or a UserError quoting the log's tail."""
    env = dict(os.environ)
    if ppo.gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ppo.gpu_ids
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as handle:
        handle.write(("$ " + " ".join(command) + "\n").encode())
        handle.flush()
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=env).returncode
    metrics_file = out_dir / METRICS_FILE
    if code != 0 or not metrics_file.is_file():
        with open(log_file, errors="replace") as handle:
            tail = "\n".join(deque((line.rstrip() for line in handle), maxlen=20))
        raise UserError(f"the accelerate PPO job exited with code {code} (log: {log_file}); last lines:\n{tail}")
    return json.loads(metrics_file.read_text())


__all__ = ["launch_command", "make_accelerator", "run_update_job", "trainable_state_dict"]
