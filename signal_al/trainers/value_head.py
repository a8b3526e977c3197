"""The PPO critic: a linear head on the policy's last hidden state, saved next to the adapter.

vLLM loads only the LoRA adapter; the value head lives in its own ``value_head.safetensors``
so the adapter folder stays a plain PEFT LoRA folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from signal_al.core.errors import UserError

VALUE_HEAD_FILE = "value_head.safetensors"


class ValueHead(nn.Module):
    """``hidden [..., H] -> value [...]`` in float32 (the hidden state is cast up first)."""

    def __init__(self, hidden_size: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1, dtype=torch.float32)
        with torch.no_grad():
            self.summary.weight.normal_(0.0, 1.0 / (hidden_size + 1) ** 0.5, generator=generator)
            self.summary.bias.zero_()

    @property
    def hidden_size(self) -> int:
        return self.summary.in_features

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)

    def save(self, folder: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        from safetensors.torch import save_file

        state = state_dict if state_dict is not None else self.state_dict()
        path = Path(folder) / VALUE_HEAD_FILE
        save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}, str(path))
        return path

    @classmethod
    def load(cls, folder: str | Path, hidden_size: int) -> "ValueHead":
        from safetensors.torch import load_file

        path = Path(folder) / VALUE_HEAD_FILE
        state = load_file(str(path))
        found = state["summary.weight"].shape[-1]
        if found != hidden_size:
            raise UserError(
                f"{path}: value head expects hidden size {found}, the base model has {hidden_size} "
                "(the adapter was trained on another base model)"
            )
        head = cls(hidden_size)
        head.load_state_dict(state)
        return head


__all__ = ["VALUE_HEAD_FILE", "ValueHead"]
