"""Generation with transformers ``generate`` and peft adapters: the dependency-light fallback.

No server and no vLLM: the model is loaded in this process. Prompts are left-padded and
generated in batches (all at once by default: the fastest setting on CPU); ``n`` samples
per prompt use ``num_return_sequences``. Per-prompt seeds are not possible inside one
batch; the batch is seeded with ``params.seed``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import torch

from signal_al.generation.backends.base import Completion, GenerationBackend, SamplingParams
from signal_al.generation.dtypes import resolve_generator_dtype

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class TransformersBackend(GenerationBackend):
    """A causal LM (plus named LoRA adapters) generating in left-padded batches."""

    name = "transformers"

    def __init__(self, model: str, *, dtype: str = "auto", device: str = "cpu", batch_size: int = 64) -> None:
        """``batch_size``: sequences (prompts x samples) per ``generate`` call; ``dtype`` may be "auto"."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device)
        self.dtype = resolve_generator_dtype(dtype, str(self.device))
        self.batch_size = max(1, batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=_DTYPES[self.dtype]).to(self.device).eval()
        self.adapters: dict[str, str] = {}

    def load_adapter(self, name: str, path: str | Path) -> None:
        from peft import PeftModel

        path = str(Path(path).absolute())
        if self.adapters.get(name) == path:
            return
        if not self.adapters:
            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name).eval()
        else:
            self.model.load_adapter(path, adapter_name=name)
        self.adapters[name] = path

    def _stop_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    @torch.inference_mode()
    def _generate_batch(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.device)
        sample = params.temperature > 0
        copies = params.n if sample else 1  # transformers refuses num_return_sequences > 1 when greedy
        output = self.model.generate(
            **batch, max_new_tokens=params.max_tokens, do_sample=sample,
            min_new_tokens=params.max_tokens if params.ignore_eos else None,
            temperature=params.temperature if sample else None, top_p=params.top_p if sample else None, top_k=None,
            pad_token_id=self.tokenizer.pad_token_id, return_dict_in_generate=True, output_logits=params.logprobs,
            num_return_sequences=copies,
        )
        width = batch["input_ids"].shape[1]
        stop = self._stop_ids()
        completions = []
        # generate() repeats each prompt in place: output row = prompt * copies + sample. Greedy
        # decoding (one copy) gives the same text n times, as vLLM does.
        for prompt_row, sample_index in itertools.product(range(len(prompts)), range(params.n)):
            row = prompt_row * copies + (sample_index if copies > 1 else 0)
            mask = batch["attention_mask"][prompt_row].bool()
            prompt_ids = batch["input_ids"][prompt_row][mask].tolist()
            ids = output.sequences[row, width:].tolist()
            finish = "length"
            for position, token in enumerate([] if params.ignore_eos else ids):
                if token in stop:  # keep the stop token, like vLLM's token_ids
                    ids, finish = ids[: position + 1], "stop"
                    break
            logprobs = None
            if params.logprobs:
                # the distribution the token was sampled from: raw logits over the temperature (top-p < 1 would
                # also truncate it; not modelled here)
                scale = params.temperature if sample else 1.0
                logprobs = [float(torch.log_softmax(output.logits[step][row].float() / scale, -1)[token])
                            for step, token in enumerate(ids)]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            completions.append(Completion(text, ids, prompt_ids, finish, logprobs))
        return completions

    def generate(self, prompts: Sequence[str], params: SamplingParams, adapter: str | None = None) -> list[Completion]:
        if params.seed is not None:
            torch.manual_seed(params.seed)
        if adapter is not None:
            if adapter not in self.adapters:
                raise KeyError(f"adapter '{adapter}' is not loaded (loaded: {sorted(self.adapters)})")
            self.model.set_adapter(adapter)
        results: list[Completion] = []
        per_call = max(1, self.batch_size // params.n)  # prompts per call: batch_size sequences in all
        for start in range(0, len(prompts), per_call):
            chunk = prompts[start: start + per_call]
            if adapter is None and self.adapters:
                with self.model.disable_adapter():
                    results += self._generate_batch(chunk, params)
            else:
                results += self._generate_batch(chunk, params)
        return results

    def close(self) -> None:
        self.model = None
