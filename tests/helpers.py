"""Shared test helpers: the offline asset cache (fetched by `make test`, never skipped)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from signal_al.assets import asset_path, cache_dir  # noqa: E402


def ready_asset(name: str) -> Path:
    """Folder of an offline asset; fails (never skips) with the command that fetches it."""
    return asset_path(name, cache_dir())


def random_lora(model_dir: Path, out: Path) -> Path:
    """A peft LoRA adapter on a causal LM with random A and B (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(out)
    return out
