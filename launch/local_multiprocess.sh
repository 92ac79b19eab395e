#!/usr/bin/env bash
# N coarse2fine processes on this machine, joined through jax.distributed (CPU collectives: gloo).
#
#   launch/local_multiprocess.sh --config=configs/NAME.py --workdir=DIR [--num_processes=2] [--port=12355]
#                                [--log_dir=LOGS] [--dry-run] [-- --config.train.num_epochs=1 ...]
#
# Process i runs `python -m coarse2fine.main` with --coordinator_address=localhost:PORT
# --num_processes=N --process_id=i; its output goes to LOGS/process_i.log (LOGS: DIR, or a new
# temporary folder when DIR is a gs:// or s3:// URL). The script waits for all of them and exits
# non-zero if any failed. --dry-run prints the commands instead.
set -euo pipefail

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

config="" workdir="" num_processes=2 port=12355 log_dir="" dry_run=0 python="${PYTHON:-python}"
extra=()
while (($#)); do
  case "$1" in
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --num_processes=*) num_processes="${1#*=}" ;;
    --port=*) port="${1#*=}" ;;
    --log_dir=*) log_dir="${1#*=}" ;;
    --dry-run) dry_run=1 ;;
    -h|--help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "local_multiprocess.sh: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
if [[ -z "$config" || -z "$workdir" ]]; then
  echo "local_multiprocess.sh: --config and --workdir are required" >&2
  usage
fi
if ! [[ "$num_processes" =~ ^[1-9][0-9]*$ && "$port" =~ ^[0-9]+$ ]]; then
  echo "local_multiprocess.sh: --num_processes must be a positive integer and --port a number" >&2
  exit 2
fi

commands=()
for ((i = 0; i < num_processes; i++)); do
  printf -v cmd '%q ' "$python" -m coarse2fine.main "--config=$config" "--workdir=$workdir" \
    "--coordinator_address=localhost:$port" "--num_processes=$num_processes" "--process_id=$i" "${extra[@]}"
  commands+=("${cmd% }")
done

if ((dry_run)); then
  printf '%s\n' "${commands[@]}"
  exit 0
fi

if [[ -z "$log_dir" ]]; then
  if [[ "$workdir" == *://* ]]; then
    log_dir="$(mktemp -d "${TMPDIR:-/tmp}/c2f_logs.XXXXXX")"
  else
    log_dir="$workdir"
  fi
fi
mkdir -p "$log_dir"
echo "local_multiprocess.sh: logs in $log_dir/process_*.log" >&2
pids=()
for ((i = 0; i < num_processes; i++)); do
  bash -c "${commands[$i]}" >"$log_dir/process_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < num_processes; i++)); do
  if ! wait "${pids[$i]}"; then
    echo "local_multiprocess.sh: process $i failed; see $log_dir/process_$i.log" >&2
    status=1
  fi
done
exit "$status"
