"""Generation throughput: the vLLM server backend vs the transformers backend.

Same model, the same 64 in-context rt-movies prompts (chat template applied), the same
sampling settings and exactly 48 new tokens per prompt (EOS ignored, so both produce the
same number of tokens). Both run in the dtype ``generator.dtype: auto`` picks for this
device (``--dtype``; bf16 only where the hardware computes it natively, else float32 on
CPUs: emulated bf16 is many times slower) and transformers with all prompts in one
left-padded batch. Each contender gets an untimed warm-up pass, then ``--repeats`` timed
passes, back to back in this one run (the machine may be shared: the best pass counts).
Each rate is also shown as a fraction of the compute floor: 2 x parameters flop per token
at this machine's measured matmul rate in the dtype the backends use.

On a machine with a GPU, ``--model`` can name a larger Qwen2-architecture folder (random
weights from a config are fine for speed; ``--random-qwen2 1.5b`` builds one).

Last line: ``generation: dtype=<d> vllm_tok_s=<x> hf_tok_s=<y> speedup=<x/y>``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from signal_al.assets.registry import resolve_model
from signal_al.config import DataConfig
from signal_al.data import load_task, real_pool
from signal_al.generation.backends.base import GenerationBackend, SamplingParams
from signal_al.generation.dtypes import GENERATOR_DTYPES, resolve_generator_dtype
from signal_al.generation.prompts import apply_chat_template, make_prompts
from signal_al.generation.server.access import free_port
from signal_al.generation.server.process import ServerSettings, VLLMServer


def matmul_flops(dtype: torch.dtype, device: str, size: int = 1024, seconds: float = 2.0) -> float:
    """Sustained matmul rate (flop/s) of this machine for ``dtype``.

    One warm-up product and a time-bounded loop: an emulated dtype (bf16 on an AVX2 CPU,
    ~1 GFLOP/s) must not stall the benchmark for minutes.
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * size**3 * count / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def parameter_count(model_dir: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def random_qwen2(size: str, out: Path) -> str:
    """A Qwen2-architecture folder with random bf16 weights (speed only), tokenizer from SmolLM2."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    shapes = {"1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                           num_key_value_heads=2),
              "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4)}[size]
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=4096, torch_dtype="bfloat16",
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **shapes)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def timed(backend: GenerationBackend, prompts: list[str], params: SamplingParams, repeats: int) -> float:
    """Best tokens/s over ``repeats`` timed passes, after one untimed warm-up pass."""
    backend.generate(prompts, params)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        completions = backend.generate(prompts, params)
        seconds = time.perf_counter() - start
        tokens = sum(len(c.token_ids) for c in completions)
        expected = len(prompts) * params.max_tokens
        assert tokens == expected, f"{tokens} tokens, expected {expected}"
        best = max(best, tokens / seconds)
        print(f"  {backend.name}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:.1f} tok/s", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Asset name or model folder.")
    parser.add_argument("--random-qwen2", choices=("1.5b", "7b"), help="Benchmark a random-weight Qwen2 instead.")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--venv", default=None, help="CPU server environment (default: the machine's one in the asset cache).")
    parser.add_argument("--dtype", default="auto", choices=GENERATOR_DTYPES,
                        help="Weights dtype of both backends (auto: what generator.dtype auto picks here).")
    parser.add_argument("--backends", default="vllm-server,transformers",
                        help="Comma-separated subset of vllm-server,transformers.")
    args = parser.parse_args()
    backends = set(args.backends.split(","))

    from signal_al.generation.backends.hf import TransformersBackend
    from signal_al.generation.backends.server import VLLMServerBackend

    device = "cuda" if torch.cuda.is_available() else "cpu"
    scratch = tempfile.TemporaryDirectory(prefix="bench-generation-")
    model = random_qwen2(args.random_qwen2, Path(scratch.name)) if args.random_qwen2 else resolve_model(args.model)

    data_config = DataConfig(task="rt-movies")
    data = load_task(data_config)
    pool = real_pool(data, data_config, seed=0)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [apply_chat_template(tokenizer, p.text)
               for p in make_prompts(data.spec, pool, args.prompts, 3, np.random.default_rng(0))]
    params = SamplingParams(max_tokens=args.max_tokens, temperature=1.0, top_p=0.95, seed=0, ignore_eos=True)
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"model {model} on {device}; {len(prompts)} prompts ({np.mean(prompt_tokens):.0f} tokens on average), "
          f"{args.max_tokens} new tokens each, temperature 1.0, top_p 0.95", flush=True)

    dtype = resolve_generator_dtype(args.dtype, device)
    rate = matmul_flops(getattr(torch, dtype), device)
    floor = rate / (2 * parameter_count(model))
    print(f"dtype {dtype} ({args.dtype} on {device}); {dtype} matmul: {rate / 1e9:.1f} GFLOP/s -> compute floor "
          f"{floor:.0f} tok/s", flush=True)

    rates: dict[str, float] = {}
    if "vllm-server" in backends:
        settings = ServerSettings(model=model, port=free_port(), venv=Path(args.venv) if args.venv else None,
                                  dtype=dtype)
        with VLLMServer(settings) as server:
            rates["vllm-server"] = timed(VLLMServerBackend(server.url, parallel=args.prompts), prompts, params,
                                         args.repeats)
    if "transformers" in backends:
        hf = TransformersBackend(model, dtype=dtype, device=device, batch_size=args.prompts)
        rates["transformers"] = timed(hf, prompts, params, args.repeats)

    for name, tok_s in rates.items():
        print(f"{name} ({dtype}): {tok_s:.1f} tok/s = {tok_s / floor:.1%} of the compute floor")
    vllm_tok_s, hf_tok_s = rates.get("vllm-server", float("nan")), rates.get("transformers", float("nan"))
    print(f"generation: dtype={dtype} vllm_tok_s={vllm_tok_s:.1f} hf_tok_s={hf_tok_s:.1f} "
          f"speedup={vllm_tok_s / hf_tok_s:.2f}")


if __name__ == "__main__":
    main()
