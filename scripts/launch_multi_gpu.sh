#!/usr/bin/env bash
# SIGnAL on one multi-GPU node: the vLLM generator server on some GPUs, the loop (classifier)
# and each PPO update (`accelerate launch`) on the others.
#
#   scripts/launch_multi_gpu.sh --config configs/paper_sst2_1pct.yaml \
#       --server-gpus 0 --train-gpus 1,2,3 [--tp 1] [--accelerate-config configs/accelerate/multi_gpu.yaml] \
#       [--port 8000] [--resume] [-- extra `signal-al run` arguments, e.g. --set seed=1]
#   scripts/launch_multi_gpu.sh --config CONFIG --cpu [--train-processes 2]   # the same on CPU (tests)
#
# What it does:
#   1. starts `signal-al serve-generator` with CUDA_VISIBLE_DEVICES=<server-gpus> (tensor parallel over
#      them with --tp N) and waits for /health; its log is RUN_DIR.vllm-server.log (next to the run folder);
#   2. runs `signal-al run` with CUDA_VISIBLE_DEVICES=<first train GPU> for the classifier, pointed at that
#      server (generator.start_server=false) and with ppo.launcher=accelerate: every round's PPO update is
#      `accelerate launch --config_file <accelerate-config> --num_processes <#train GPUs>` on <train-gpus>;
#   3. stops the server when the run ends, fails or is interrupted (Ctrl-C, SIGTERM).
# The run is resumable: after a crash, run the same command with --resume.
# The server listens on 127.0.0.1 only and gets a fresh API key (exported as SIGNAL_AL_VLLM_API_KEY to the
# server and the run, unless already set), so nobody else on the machine can load adapters into it.
# --cpu: no GPUs; the update is `accelerate launch` of --train-processes gloo processes
# (configs/accelerate/cpu_2proc.yaml unless --accelerate-config is given).
#
# Several nodes: keep the server and the loop on node 0 (as above) and give the PPO job an accelerate
# config with num_machines > 1, machine_rank 0, main_process_ip/port of node 0 (see
# configs/accelerate/multi_gpu.yaml); start the same `accelerate launch ... -m signal_al.cli train-generator`
# on every other node with its machine_rank for each round, e.g. from your scheduler (SLURM: srun), reading
# the run folder from shared storage. The loop writes each round's D_RL to RUN_DIR/rl/round-NNN.jsonl and
# waits for RUN_DIR/adapters/round-NNN.
set -euo pipefail

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

config="" server_gpus="0" train_gpus="" tp="1" port="8000" resume="" cpu="" train_processes="2"
here=$(cd "$(dirname "$0")/.." && pwd)
accelerate_config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config|-c) config=$2; shift 2 ;;
    --server-gpus) server_gpus=$2; shift 2 ;;
    --train-gpus) train_gpus=$2; shift 2 ;;
    --tp) tp=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --accelerate-config) accelerate_config=$2; shift 2 ;;
    --resume) resume="--resume"; shift ;;
    --cpu) cpu=1; shift ;;
    --train-processes) train_processes=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "$0: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$config" ] || { echo "$0: --config is required (see --help)" >&2; exit 2; }
[ -f "$config" ] || { echo "$0: no config file $config" >&2; exit 2; }
if [ -z "$accelerate_config" ]; then
  accelerate_config="$here/configs/accelerate/$([ -n "$cpu" ] && echo cpu_2proc || echo multi_gpu).yaml"
fi
[ -f "$accelerate_config" ] || { echo "$0: no accelerate config $accelerate_config" >&2; exit 2; }
[[ "$port" =~ ^[0-9]+$ ]] || { echo "$0: --port must be a number, got $port" >&2; exit 2; }
if [ -n "$cpu" ]; then
  [[ "$train_processes" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --train-processes must be positive" >&2; exit 2; }
elif [ -z "$train_gpus" ]; then
  count=$(nvidia-smi --list-gpus 2>/dev/null | wc -l || true)
  [ "${count:-0}" -ge 2 ] || { echo "$0: need --train-gpus (found ${count:-0} GPUs)" >&2; exit 2; }
  train_gpus=$(seq -s, 0 $((count - 1)) | tr ',' '\n' | grep -vxF -f <(tr ',' '\n' <<<"$server_gpus") | paste -sd,)
fi
IFS=, read -r -a train_list <<<"$train_gpus"
num_train=${#train_list[@]}
signal_al=${SIGNAL_AL:-signal-al}
url="http://127.0.0.1:$port"
export SIGNAL_AL_VLLM_API_KEY=${SIGNAL_AL_VLLM_API_KEY:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
if [ -n "$cpu" ]; then
  server_env=(env -u CUDA_VISIBLE_DEVICES) loop_env=(env -u CUDA_VISIBLE_DEVICES)
  num_train=$train_processes
  placement=(--set ppo.gpu_ids=null)
else
  server_env=(env "CUDA_VISIBLE_DEVICES=$server_gpus") loop_env=(env "CUDA_VISIBLE_DEVICES=${train_list[0]}")
  placement=(--set "ppo.gpu_ids=$train_gpus")
fi

run_dir=$("$signal_al" config show -c "$config" "$@" --key run_dir 2>/dev/null || true)
run_dir=${run_dir:-runs}
# next to the run folder, not in it: a new run refuses a folder that holds files but no state.json
server_log="${run_dir%/}.vllm-server.log"
mkdir -p "$(dirname "$run_dir")"
if [ -n "$cpu" ]; then
  echo "generator server: CPU at $url; log $server_log"
  tp_args=()
else
  echo "generator server: GPUs $server_gpus (tensor parallel $tp) at $url; log $server_log"
  tp_args=(--tensor-parallel-size "$tp")
fi
set_args=()  # the extra arguments' --set overrides also configure the server (e.g. generator.model)
extra=("$@")
for ((i = 0; i < ${#extra[@]}; i++)); do
  [ "${extra[$i]}" = "--set" ] && [ $((i + 1)) -lt ${#extra[@]} ] && set_args+=(--set "${extra[$((i + 1))]}")
done
"${server_env[@]}" "$signal_al" serve-generator -c "$config" "${set_args[@]}" --host 127.0.0.1 --port "$port" \
  "${tp_args[@]}" --log-file "$server_log" &
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

if [ -n "$cpu" ]; then
  echo "loop: CPU; PPO: accelerate with $num_train CPU processes ($accelerate_config)"
else
  echo "loop: classifier on GPU ${train_list[0]}; PPO: accelerate on GPUs $train_gpus ($num_train processes)"
fi
"${loop_env[@]}" "$signal_al" run -c "$config" $resume \
  --set generator.backend=vllm-server --set generator.start_server=false --set "generator.server_url=$url" \
  --set "generator.server_urls=[]" --set ppo.launcher=accelerate --set "ppo.accelerate_config=$accelerate_config" \
  --set "ppo.num_processes=$num_train" "${placement[@]}" "$@"
