"""Shared test helpers: the offline asset cache (fetched by `make test`, never skipped)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from signal_al.assets.registry import asset_path, cache_dir  # noqa: E402


def ready_asset(name: str) -> Path:
    """Folder of an offline asset; fails (never skips) with the command that fetches it."""
    return asset_path(name, cache_dir())


def tiny_qwen2_with_smollm2_tokenizer(max_positions: int = 512):
    """``(model, tokenizer)``: a random 2-layer Qwen2 sharing SmolLM2's tokenizer (GRPO and TRL decode
    completions for their rewards, so the tokenizer must be a real one)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ready_asset("smollm2-135m-instruct"))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model, tokenizer


def one_torch_thread():
    """Generator fixture body: tiny models on a shared 2-core machine run many times faster on one
    intra-op thread; the previous count comes back after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_lora(model_dir: Path, out: Path) -> Path:
    """A peft LoRA adapter on a causal LM with random A and B (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(out)
    return out


class JSONServer:
    """A local JSON-over-HTTP server on a free port, for fake vLLM servers in tests.

    ``route(path, headers, payload)`` answers each request (``payload`` is None for GET) with
    ``(status, body)``; the server runs in a daemon thread from construction until :meth:`stop`.
    """

    def __init__(self, route) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _answer(self, payload: dict | None) -> None:
                status, body = route(self.path, self.headers, payload)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(None)

            def do_POST(self) -> None:
                self._answer(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
