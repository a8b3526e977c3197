"""The vLLM plugin that replaces vLLM's per-token CPU LoRA ops with grouped matmuls
(signal_al/generation/server/vllm_plugins/signal_al_cpu_lora.py), against a float64 per-token
reference of vLLM's own semantics (gather the token's adapter slot, index -1 = the last slot),
and its discovery through the entry point the server's PYTHONPATH exposes. The served-vs-trained
log-prob parity through a real server with the plugin loaded is tests/test_serving_vllm.py."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import numpy as np
import pytest
import torch

from signal_al.generation.server.process import CPU_LORA_PLUGIN_DIR, server_env


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("signal_al_cpu_lora", CPU_LORA_PLUGIN_DIR / "signal_al_cpu_lora.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference(x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> np.ndarray:
    """Row t = x[t] @ w[idx[t]].T in float64, one token at a time (vLLM's gather + einsum, unbatched)."""
    xs, ws = x.double().numpy(), w.double().numpy()
    if ws.ndim == 4:
        ws = ws[:, 0]
    if xs.shape[0] == 0:
        return np.zeros((0, ws.shape[1]))
    return np.stack([xs[t] @ ws[int(idx[t])].T for t in range(xs.shape[0])])


@pytest.mark.parametrize("indices", [[0] * 9, [1, 0, -1, 1, 1, 0, -1, 2, 2], [-1] * 9, []])
def test_grouped_ops_equal_a_per_token_reference(plugin, indices: list[int]) -> None:
    g = torch.Generator().manual_seed(len(indices))
    idx = torch.tensor(indices, dtype=torch.long)
    n = idx.numel()
    x = torch.randn(n, 24, generator=g)
    a = torch.randn(3, 1, 4, 24, generator=g)  # vLLM's (slots, 1, rank, in) layout
    b = torch.randn(3, 1, 30, 4, generator=g)
    h = torch.randn(n, 4, generator=g)

    out = torch.full((n, 4), 7.0)
    plugin.bgmv_shrink(x, a, out, idx, 0.5)
    np.testing.assert_allclose(out.numpy(), 0.5 * _reference(x, a, idx).reshape(n, 4), rtol=1e-5, atol=1e-5)

    start = torch.randn(n, 30, generator=g)
    out = start.clone()
    plugin.bgmv_expand(h, b, out, idx, True)
    np.testing.assert_allclose(out.numpy(), start.double().numpy() + _reference(h, b, idx).reshape(n, 30),
                               rtol=1e-5, atol=1e-5)
    out = start.clone()
    plugin.bgmv_expand(h, b, out, idx, False)
    np.testing.assert_allclose(out.numpy(), _reference(h, b, idx).reshape(n, 30), rtol=1e-5, atol=1e-5)

    wide = torch.randn(n, 50, generator=g)
    out = wide.clone()
    plugin.bgmv_expand_slice(h, b, out, idx, 10, 30, True)
    expected = wide.double().numpy().copy()
    expected[:, 10:40] += _reference(h, b, idx).reshape(n, 30)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_server_environment_exposes_the_plugin_through_its_entry_point(plugin) -> None:
    env = server_env(sys.executable, cpu=True, kv_cache_gib=1)
    assert env["PYTHONPATH"].split(":")[0] == str(CPU_LORA_PLUGIN_DIR)
    found = [ep for dist in importlib.metadata.distributions(path=[str(CPU_LORA_PLUGIN_DIR)])
             for ep in dist.entry_points if ep.group == "vllm.general_plugins"]
    assert [ep.value for ep in found] == ["signal_al_cpu_lora:register"]
    assert "PYTHONPATH" not in server_env(sys.executable, cpu=False, kv_cache_gib=1) or (
        str(CPU_LORA_PLUGIN_DIR) not in server_env(sys.executable, cpu=False, kv_cache_gib=1)["PYTHONPATH"])


def test_plugin_doctests(plugin) -> None:
    import doctest

    result = doctest.testmod(plugin)
    assert result.attempted > 0 and result.failed == 0
