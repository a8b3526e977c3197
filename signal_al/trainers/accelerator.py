"""The update's Accelerator: the one place that knows how a launch config becomes processes.

On CPU machines accelerate (1.15) runs an FSDP launch config as plain DDP; here FSDP2 over
gloo is switched on explicitly so a CPU job really shards (and is tested that way).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["is_fsdp", "make_accelerator", "trainable_state_dict"]


def make_accelerator(gradient_accumulation_steps: int = 1, cpu: bool | None = None) -> Any:
    """The update's Accelerator; without a GPU under an FSDP launch config, FSDP2 over gloo.

    accelerate (1.15) ignores ``fsdp_config`` for CPU processes (MULTI_CPU: plain DDP), so a
    CPU job launched with configs/accelerate/fsdp.yaml would silently not shard. Here the
    state is switched to FSDP with the plugin the launcher's environment describes, and
    ``get_state_dict`` gathers the trainable parameters with ``DTensor.full_tensor()``
    (accelerate's full state dict hands back views of freed all-gather buffers on CPU).
    Measured: 2 gloo processes give the losses of one process to 1e-7 with
    ``ppo.share_prompt_forward: false``; with the shared prompt forward FSDP's backward
    fails (the prompt's cache comes from a forward whose parameters were resharded).
    """
    import torch
    from accelerate import Accelerator

    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    accelerator = Accelerator(gradient_accumulation_steps=gradient_accumulation_steps, cpu=cpu)
    if cpu and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and accelerator.num_processes > 1:
        from accelerate import FullyShardedDataParallelPlugin
        from accelerate.utils import DistributedType

        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()
        accelerator.get_state_dict = lambda model, unwrap=True: trainable_state_dict(model)
    return accelerator


def trainable_state_dict(model: Any) -> dict:
    """Full copies of ``model``'s trainable parameters (LoRA, value head), gathered from FSDP2 shards."""
    from torch.distributed.tensor import DTensor

    return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
            for name, p in model.named_parameters() if p.requires_grad}


def is_fsdp(accelerator: Any) -> bool:
    """Whether the update's parameters are sharded with FSDP."""
    return str(getattr(accelerator.state, "distributed_type", "")).endswith("FSDP")
