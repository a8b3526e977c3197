"""Generation backends behind one interface; heavy ones are imported only when chosen."""

from __future__ import annotations

from signal_al.generation.backends.base import Completion, GenerationBackend, SamplingParams


def make_backend(config, *, model: str | None = None, device: str = "cpu") -> GenerationBackend:
    """The backend named by ``config.backend`` (a GeneratorConfig); ``model`` is the resolved model path."""
    from signal_al.assets.registry import resolve_model

    model = model or resolve_model(config.model)
    if config.backend == "vllm-server":
        from signal_al.generation.backends.server import VLLMServerBackend

        return VLLMServerBackend.from_config(config)
    if config.backend == "transformers":
        from signal_al.generation.backends.hf import TransformersBackend

        return TransformersBackend(model, dtype=config.dtype, device=device, batch_size=config.hf_batch_size)
    if config.backend == "vllm":
        from signal_al.generation.backends.vllm_inproc import VLLMInProcessBackend

        return VLLMInProcessBackend(model, dtype=config.dtype, max_model_len=config.max_model_len,
                                    max_lora_rank=config.max_lora_rank)
    raise ValueError(f"unknown generator backend {config.backend!r}")


__all__ = ["Completion", "GenerationBackend", "SamplingParams", "make_backend"]
