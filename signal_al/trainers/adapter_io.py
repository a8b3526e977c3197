"""Writing a generator adapter folder that vLLM hot-loads, shared by the PPO and GRPO trainers.

The folder is a plain PEFT LoRA folder plus ``ppo_state.json`` (beta and the base model's
fingerprint, read back by the next round), ``metrics.json``, ``optimizer.pt`` (AdamW's state
keyed by parameter name, so the next update continues the same optimizer) and, for PPO with a
critic, ``value_head.safetensors``. It appears atomically (staging folder, then rename), so the
loop or a vLLM server never sees half an adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from signal_al.core.errors import UserError
from signal_al.core.io_utils import atomic_directory

STATE_FILE = "ppo_state.json"
METRICS_FILE = "metrics.json"
OPTIMIZER_FILE = "optimizer.pt"


def model_fingerprint(config: Any) -> dict[str, Any]:
    """The base model's shape, saved with an adapter so another base model is refused clearly."""
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    return {k: getattr(config, k, None) for k in keys}


def check_vllm_loadable(lora_config: Any, where: str) -> None:
    """Plain LoRA only: vLLM refuses DoRA, trained biases and modules_to_save."""
    get = (lambda k: lora_config.get(k)) if isinstance(lora_config, dict) else (lambda k: getattr(lora_config, k, None))
    problems = []
    if get("use_dora"):
        problems.append("DoRA")
    if get("bias") not in (None, "none"):
        problems.append(f"bias={get('bias')}")
    if get("modules_to_save"):
        problems.append(f"modules_to_save={get('modules_to_save')}")
    if problems:
        raise UserError(f"{where}: adapter is not a plain LoRA vLLM can serve ({', '.join(problems)})")


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse to replace a non-empty folder unless ``overwrite``."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: output folder exists and is not empty")


def save_adapter(out: str | Path, policy: Any, *, base_model: str, state: dict[str, Any],
                 metrics: dict[str, Any] | None = None, policy_state: dict[str, torch.Tensor] | None = None,
                 value_head: Any = None, head_state: dict[str, torch.Tensor] | None = None,
                 optimizer_state: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``policy``'s LoRA adapter (+ value head, state, metrics) to ``out`` atomically.

    ``policy`` is an unwrapped ``peft.PeftModel``; ``policy_state``/``head_state`` are full
    state dicts when the weights are sharded (ZeRO-3 / FSDP gather them on the caller's side).
    Call on the main process only.
    """
    out = Path(out)
    check_output_folder(out, overwrite)
    with atomic_directory(out) as tmp:
        policy.peft_config["default"].base_model_name_or_path = base_model
        policy.save_pretrained(str(tmp), state_dict=policy_state)
        check_vllm_loadable(json.loads((tmp / "adapter_config.json").read_text()), where=str(out))
        if value_head is not None:
            value_head.save(tmp, head_state)
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        if metrics is not None:
            (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=str))
    return out


def read_optimizer_state(adapter: Path) -> dict[str, Any] | None:
    """The optimizer state saved with ``adapter`` (None when it has none, e.g. an adapter from elsewhere)."""
    path = Path(adapter) / OPTIMIZER_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, do not train on garbage
        raise UserError(f"{path}: cannot read the saved optimizer state ({type(exc).__name__}: {exc}); "
                        "delete the file to start a fresh optimizer from this adapter") from None


__all__ = ["METRICS_FILE", "OPTIMIZER_FILE", "STATE_FILE", "check_output_folder", "check_vllm_loadable",
           "model_fingerprint", "read_optimizer_state", "save_adapter"]
