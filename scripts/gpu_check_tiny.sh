#!/usr/bin/env bash
# The tiny mode of scripts/gpu_check.sh (see its --help); called by it as
#   gpu_check_tiny.sh ROOT OUT BUDGET PYTHON CARRY DEVICE ONLY DRY_RUN
set -uo pipefail
here=$1 out=$2 budget=$3 python=$4 carry=$5 device=$6 only=$7 dry_run=$8

# name | seconds | what
checks=(
  "missing|20|vLLM, faiss on the GPU, bitsandbytes"
  "ppo|60|bf16 PPO + LoRA update"
  "persist|60|optimizer state: two updates = one run of both"
  "classifier|60|classifier training on the device"
  "generation|60|transformers generation backend"
  "parity|60|served = trained log-probs"
  "signal|150|2-round SIGnAL run (transformers backend)"
  "fsdp|90|FSDP2 on one device (accelerate launch)"
)
# The limits are sized for the GPU; on --device cpu (the CI's path through the script) a 2-core machine
# with other work on it takes several times longer, so each limit is this many times larger there
# (the total --budget still caps the run).
cpu_limit_scale=4
scaled() { [ "$device" = cpu ] && echo $(( $1 * cpu_limit_scale )) || echo "$1"; }
selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
if [ -n "$only" ]; then
  for name in ${only//,/ }; do
    printf '%s\n' "${checks[@]}" | cut -d'|' -f1 | grep -qx "$name" || { echo "gpu_check.sh: unknown tiny check $name" >&2; exit 2; }
  done
fi
command -v "$python" >/dev/null || { echo "gpu_check.sh: no interpreter $python (--python)" >&2; exit 2; }
wheels="$carry/wheels"
needs_pack=0
for part in smollm2/config.json smollm2/tokenizer.json minilm/config.json minilm/vocab.txt vader-corpora/READY.json; do
  [ -f "$carry/$part" ] || { needs_pack=1; missing_part=$part; }
done

if [ -n "$dry_run" ]; then
  echo "gpu_check tiny plan (budget ${budget}s, device $device, output $out, python $python, carry $carry):"
  for entry in "${checks[@]}"; do
    IFS='|' read -r name seconds what <<<"$entry"
    selected "$name" && printf '  %-10s <= %3ss  %s\n' "$name" "$(scaled "$seconds")" "$what"
  done
  if [ "$needs_pack" = 1 ]; then
    echo "  carry folder: MISSING $carry/$missing_part (run: python scripts/gpu_tiny.py pack $carry)"
  else
    echo "  carry folder: $(du -sh "$carry" | cut -f1) ($(ls "$wheels" 2>/dev/null | wc -l) wheels)"
  fi
  for module in torch transformers peft accelerate trl faiss vllm bitsandbytes; do
    if "$python" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$module') else 1)" 2>/dev/null; then
      echo "  python module $module: found"
    elif ls "$wheels" 2>/dev/null | grep -qi "^${module//-/_}"; then
      echo "  python module $module: from the carried wheels"
    else
      echo "  python module $module: missing (its check says skipped)"
    fi
  done
  if [ "$device" = cuda ]; then
    command -v nvidia-smi >/dev/null && echo "  GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)" \
      || echo "  GPU: none visible (nvidia-smi missing); --device cpu tries the checks here"
  fi
  echo "dry run: nothing started"
  exit "$needs_pack"
fi
[ "$needs_pack" = 0 ] || { echo "gpu_check.sh: $carry/$missing_part is missing; run: python scripts/gpu_tiny.py pack $carry" >&2; exit 2; }

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-tiny.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# the carried wheels, only for what this interpreter lacks (a project's pins do not apply there)
site="$work/site"
for wheel in "$wheels"/*.whl; do
  [ -f "$wheel" ] || continue
  module=$(basename "$wheel" | cut -d- -f1); module=${module%_cpu}
  "$python" -c "import $module" 2>/dev/null && continue
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheel" \
    >>"$out/install.log" 2>&1 || echo "could not install $(basename "$wheel") (see install.log)" >&2
done
export PYTHONPATH="$here${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"

start_s=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start_s) )); }
table="$out/gpu_check.tsv"
: >"$table"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$table"; }

if ! "$python" scripts/gpu_tiny.py build "$carry" "$work" >"$out/build.log" 2>&1; then
  record build FAIL 0 "$(tail -1 "$out/build.log" | cut -c1-120)"
fi
{ [ "$device" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; \
  "$python" -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__, \
'accelerate', accelerate.__version__)"; } >"$out/env.log" 2>&1

for entry in "${checks[@]}"; do
  IFS='|' read -r name limit what <<<"$entry"
  selected "$name" || continue
  limit=$(scaled "$limit")
  remaining=$(left)
  if [ "$remaining" -le 5 ]; then record "$name" SKIP 0 "out of budget"; continue; fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  t0=$(date +%s)
  if [ "$name" = missing ]; then
    timeout --kill-after=10 "$limit" "$python" scripts/gpu_tiny.py missing >"$out/$name.log" 2>&1
  else
    timeout --kill-after=10 "$limit" "$python" scripts/gpu_tiny.py "$name" "$work" "$device" >"$out/$name.log" 2>&1
  fi
  code=$? seconds=$(( $(date +%s) - t0 ))
  line=$(grep '^RESULT ' "$out/$name.log" | tail -1)
  status=$(sed -n 's/.*status=\([A-Z]*\).*/\1/p' <<<"$line")
  note=$(sed -n 's/.*note=\(.*\)/\1/p' <<<"$line")
  if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then status=TIMEOUT; note="over ${limit}s; see $name.log"
  elif [ -z "$status" ]; then status=FAIL; note="exit $code: $(grep -v '^\s*$' "$out/$name.log" | tail -1 | cut -c1-120)"; fi
  record "$name" "$status" "$seconds" "${note//;/ }"
  echo "[$name] $status (${seconds}s) $what" >&2
done
for log in signal.log fsdp.log; do [ -f "$work/$log" ] && cp "$work/$log" "$out/run-$log"; done

{
  echo "| check | status | seconds | notes |"
  echo "| --- | --- | --- | --- |"
  while IFS=$'\t' read -r name status seconds note; do
    echo "| $name | $status | $seconds | $note |"
  done <"$table"
  echo
  echo "tiny mode on $device, total $(( $(date +%s) - start_s ))s of ${budget}s; $(head -1 "$out/env.log")"
} | tee "$out/gpu_check.md"
! grep -qP '\t(FAIL|TIMEOUT)\t' "$table"
