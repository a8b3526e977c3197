#!/usr/bin/env bash
# Multi-process generator update: scripts/launch_ppo.sh SETUP NUM_PROCESSES train-generator ARGS...
#   SETUP: single_gpu | multi_gpu | deepspeed_zero2 | deepspeed_zero3 | fsdp | cpu_2proc
#   e.g.   scripts/launch_ppo.sh multi_gpu 4 --config configs/paper_sst2_1pct.yaml --rl-data d_rl.jsonl --out adapter
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 SETUP NUM_PROCESSES [train-generator arguments...]" >&2
  exit 2
fi
setup=$1; nproc=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
config="$here/configs/accelerate/$setup.yaml"
if [ ! -f "$config" ]; then
  echo "$0: no accelerate config $config (choose one of: $(cd "$here/configs/accelerate" && ls *.yaml | sed 's/.yaml//' | tr '\n' ' '))" >&2
  exit 2
fi
exec accelerate launch --config_file "$config" --num_processes "$nproc" -m signal_al.cli train-generator "$@"
