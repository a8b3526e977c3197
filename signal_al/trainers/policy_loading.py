"""Loading the generator policy: base weights (optionally 4-bit), a new or previous LoRA adapter.

Every failure a user can cause (missing base model, an adapter trained on another base, an
adapter vLLM cannot serve) becomes a UserError/ConfigError before anything is trained.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from signal_al.core.errors import ConfigError, UserError
from signal_al.trainers.adapter_io import STATE_FILE, check_vllm_loadable, model_fingerprint
from signal_al.trainers.ppo_config import PPOConfig

# peft asks transformers' deprecated ``is_gradient_checkpointing`` on every wrap: a FutureWarning in every
# run's log that no user can act on (transformers 5.x, peft 0.21).
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def read_adapter_state(adapter: Path, model_path: str | Path, base_model: str) -> dict[str, Any]:
    """The previous adapter's ``ppo_state.json`` (or {}), after checking it was trained on ``base_model``."""
    from transformers import AutoConfig

    if not (adapter / "adapter_config.json").is_file():
        raise UserError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
    state_path = adapter / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    expected = state.get("base_fingerprint")
    if expected:
        try:
            found = model_fingerprint(AutoConfig.from_pretrained(model_path))
        except OSError as exc:
            raise UserError(f"{base_model}: cannot read the base model config ({exc})") from None
        if found != expected:
            diff = ", ".join(f"{k} {expected[k]} vs {found.get(k)}" for k in expected if expected[k] != found.get(k))
            raise UserError(f"{adapter}: adapter was trained on another base model than {base_model} ({diff})")
    return state


def load_base(model_path: str | Path, base_model: str, config: PPOConfig, device: torch.device,
              local_process_index: int = 0) -> nn.Module:
    """The base causal LM in the training dtype, prepared for (Q)LoRA and gradient checkpointing."""
    from transformers import AutoModelForCausalLM

    c = config
    device_is_cuda = device.type == "cuda"
    if c.dtype == "auto":
        dtype = torch.bfloat16 if device_is_cuda and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, c.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if c.load_in_4bit:
        if not device_is_cuda:
            raise ConfigError("ppo.load_in_4bit: QLoRA (bitsandbytes 4-bit) needs a CUDA GPU")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if dtype == torch.float32 else dtype)
        kwargs["device_map"] = {"": local_process_index}
    try:
        base = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    except OSError as exc:
        raise UserError(f"{base_model}: cannot load the base model ({exc})") from None
    base.config.use_cache = False
    if c.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=c.gradient_checkpointing)
    elif c.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    return base


def wrap_lora(base: nn.Module, config: PPOConfig, adapter: Path | None, base_model: str) -> nn.Module:
    """A trainable PEFT model: a fresh LoRA (B = 0, so it starts as the base) or the previous adapter.

    ``ppo.lora_layers`` restricts a fresh adapter to the top layers; a previous adapter keeps its own layers.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    c = config
    if adapter is None:
        layers = None
        if c.lora_layers is not None:  # the top N layers; nothing below them needs a backward pass
            total = int(base.config.num_hidden_layers)
            layers = list(range(max(0, total - c.lora_layers), total))
        lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          target_modules=list(c.lora_target_modules), bias="none", task_type="CAUSAL_LM",
                          layers_to_transform=layers)
        try:
            return get_peft_model(base, lora)
        except ValueError as exc:
            raise ConfigError(f"ppo.lora_target_modules: {exc}") from None
    try:
        policy = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise UserError(f"{adapter}: adapter does not fit base model {base_model} ({first})") from None
    check_vllm_loadable(policy.peft_config["default"], where=str(adapter))
    return policy


def eos_ids_of(model: Any, tokenizer_path: str | Path | None = None) -> set[int]:
    """EOS token ids from the generation config, the model config and (if present) the tokenizer."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer_path is not None:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(tokenizer_path)
            if tok.eos_token_id is not None:
                ids.add(int(tok.eos_token_id))
        except Exception:  # no tokenizer next to the weights: the configs are enough
            pass
    return ids


def disable_dropout(model: nn.Module) -> None:
    """Old and new log-probs must agree before the first step: no dropout anywhere (TRL default)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


__all__ = ["disable_dropout", "eos_ids_of", "load_base", "read_adapter_state", "wrap_lora"]
