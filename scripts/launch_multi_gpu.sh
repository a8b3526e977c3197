#!/usr/bin/env bash
# SIGnAL on one multi-GPU node: the vLLM generator server on some GPUs, the loop (classifier)
# and each PPO update (`accelerate launch`) on the others.
#
#   scripts/launch_multi_gpu.sh --config configs/paper_sst2_1pct.yaml \
#       --server-gpus 0 --train-gpus 1,2,3 [--tp 1] [--accelerate-config configs/accelerate/multi_gpu.yaml] \
#       [--port 8000] [--resume] [-- extra `signal-al run` arguments, e.g. --set seed=1]
#
# What it does:
#   1. starts `signal-al serve-generator` with CUDA_VISIBLE_DEVICES=<server-gpus> (tensor parallel over
#      them with --tp N) and waits for /health; its log is RUN_DIR/vllm-server.log;
#   2. runs `signal-al run` with CUDA_VISIBLE_DEVICES=<first train GPU> for the classifier, pointed at that
#      server (generator.start_server=false) and with ppo.launcher=accelerate: every round's PPO update is
#      `accelerate launch --config_file <accelerate-config> --num_processes <#train GPUs>` on <train-gpus>;
#   3. stops the server when the run ends, fails or is interrupted (Ctrl-C, SIGTERM).
# The run is resumable: after a crash, run the same command with --resume.
#
# Several nodes: keep the server and the loop on node 0 (as above) and give the PPO job an accelerate
# config with num_machines > 1, machine_rank 0, main_process_ip/port of node 0 (see
# configs/accelerate/multi_gpu.yaml); start the same `accelerate launch ... -m signal_al.cli train-generator`
# on every other node with its machine_rank for each round, e.g. from your scheduler (SLURM: srun), reading
# the run folder from shared storage. The loop writes each round's D_RL to RUN_DIR/rl/round-NNN.jsonl and
# waits for RUN_DIR/adapters/round-NNN.
set -euo pipefail

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

config="" server_gpus="0" train_gpus="" tp="1" port="8000" resume=""
here=$(cd "$(dirname "$0")/.." && pwd)
accelerate_config="$here/configs/accelerate/multi_gpu.yaml"
while [ $# -gt 0 ]; do
  case "$1" in
    --config|-c) config=$2; shift 2 ;;
    --server-gpus) server_gpus=$2; shift 2 ;;
    --train-gpus) train_gpus=$2; shift 2 ;;
    --tp) tp=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --accelerate-config) accelerate_config=$2; shift 2 ;;
    --resume) resume="--resume"; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "$0: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$config" ] || { echo "$0: --config is required (see --help)" >&2; exit 2; }
[ -f "$config" ] || { echo "$0: no config file $config" >&2; exit 2; }
[ -f "$accelerate_config" ] || { echo "$0: no accelerate config $accelerate_config" >&2; exit 2; }
if [ -z "$train_gpus" ]; then
  count=$(nvidia-smi --list-gpus 2>/dev/null | wc -l || true)
  [ "${count:-0}" -ge 2 ] || { echo "$0: need --train-gpus (found ${count:-0} GPUs)" >&2; exit 2; }
  train_gpus=$(seq -s, 0 $((count - 1)) | tr ',' '\n' | grep -vxF -f <(tr ',' '\n' <<<"$server_gpus") | paste -sd,)
fi
IFS=, read -r -a train_list <<<"$train_gpus"
num_train=${#train_list[@]}
signal_al=${SIGNAL_AL:-signal-al}
url="http://127.0.0.1:$port"

run_dir=$("$signal_al" config show -c "$config" "$@" --key run_dir 2>/dev/null || true)
run_dir=${run_dir:-runs}
mkdir -p "$run_dir"
echo "generator server: GPUs $server_gpus (tensor parallel $tp) at $url; log $run_dir/vllm-server.log"
CUDA_VISIBLE_DEVICES=$server_gpus "$signal_al" serve-generator -c "$config" --port "$port" \
  --tensor-parallel-size "$tp" --log-file "$run_dir/vllm-server.log" &
server_pid=$!
stop_server() { kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 900); do
  curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "$0: the server exited during start (see its log)" >&2; exit 1; }
  sleep 2
done
curl -sf "$url/health" >/dev/null || { echo "$0: the server was not healthy after 30 minutes" >&2; exit 1; }

echo "loop: classifier on GPU ${train_list[0]}; PPO: accelerate on GPUs $train_gpus ($num_train processes)"
CUDA_VISIBLE_DEVICES=${train_list[0]} "$signal_al" run -c "$config" $resume \
  --set generator.backend=vllm-server --set generator.start_server=false --set "generator.server_url=$url" \
  --set ppo.launcher=accelerate --set "ppo.accelerate_config=$accelerate_config" \
  --set "ppo.num_processes=$num_train" --set "ppo.gpu_ids=$train_gpus" "$@"
