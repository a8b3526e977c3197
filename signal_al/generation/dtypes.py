"""The generator's weights dtype: ``auto`` resolved from the device, in one place.

bf16 halves memory and is the fast path on hardware built for it (CUDA GPUs from Ampere
on; CPUs with AMX tiles). Elsewhere on CPUs ``auto`` picks float32: without bf16 support,
bf16 matmuls are emulated (0.3-2.2 GFLOP/s against ~105 in fp32 on an AVX2 EPYC), and even
with AVX512-BF16 (dot-product instructions only) the vLLM CPU server generated slower in
bf16 on this project's 2-core AMD EPYC (``signal-al generate --n 48 --start-server``: 260 s
in bf16, 114 s in float32; scripts/bench_generation.py: 18 against 32 tok/s). The vLLM server, the in-process vLLM
backend and the transformers backend all call :func:`resolve_generator_dtype`, so the
three never disagree on what ``auto`` means.
"""

from __future__ import annotations

from pathlib import Path

GENERATOR_DTYPES = ("auto", "bfloat16", "float16", "float32")
_CPU_BF16_FLAGS = ("amx_bf16",)  # not avx512_bf16: slower than fp32 for the vLLM CPU server (above)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AMX-BF16), where bf16 beats fp32.

    Asks torch's CPU feature probe when it has one, else the flags in /proc/cpuinfo.
    """
    try:
        import torch

        features = torch._C._cpu._get_cpu_capability()
        if isinstance(features, dict) and any(flag in features for flag in _CPU_BF16_FLAGS):
            return any(bool(features.get(flag)) for flag in _CPU_BF16_FLAGS)
    except (ImportError, AttributeError, RuntimeError):
        pass
    return any(flag in _cpuinfo_flags() for flag in _CPU_BF16_FLAGS)


def _cpuinfo_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cuda_has_bf16() -> bool:
    """Whether the current CUDA GPU supports bf16 natively (compute capability 8.0 and later)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))


def resolve_generator_dtype(requested: str, device: str) -> str:
    """The concrete dtype name for ``requested`` (``generator.dtype``) on ``device`` ("cpu", "cuda", "cuda:1").

    An explicit dtype is returned unchanged. ``auto``: bfloat16 on GPUs that support it and
    CPUs with AMX; otherwise float16 on a CUDA GPU (pre-Ampere GPUs have fast fp16, and that is
    also what vLLM's own ``auto`` picks there) and float32 on a CPU.
    """
    if requested not in GENERATOR_DTYPES:
        raise ValueError(f"unknown generator dtype {requested!r}; expected one of {', '.join(GENERATOR_DTYPES)}")
    if requested != "auto":
        return requested
    if str(device).startswith("cuda"):
        return "bfloat16" if cuda_has_bf16() else "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"
