#!/usr/bin/env bash
# coarse2fine on a Cloud TPU VM pod slice: create or reuse it, install this checkout on every worker, run.
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE --config=configs/NAME.py --workdir=gs://BUCKET/DIR
#                     [--accelerator-type=v4-32] [--version=tpu-ubuntu2204-base] [--create]
#                     [--dry-run] [-- --config.train.batch_size=1024 ...]
#
# Steps: (with --create) `gcloud compute tpus tpu-vm create`; pack this checkout's HEAD commit with `git archive`,
# copy it to every worker and `pip install` it there with jax[tpu] and the cloud extra (gcsfs); then run
# `python -m coarse2fine.main ... --multihost` on all workers at once (JAX reads the pod's topology
# from the TPU metadata). The workdir must be storage every worker reaches (a gs:// bucket; docs/cloud.md).
# --dry-run prints the commands instead.
set -euo pipefail

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

tpu="" zone="" config="" workdir="" accelerator="v4-32" version="tpu-ubuntu2204-base" create=0 dry_run=0
extra=()
while (($#)); do
  case "$1" in
    --tpu=*) tpu="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --accelerator-type=*) accelerator="${1#*=}" ;;
    --version=*) version="${1#*=}" ;;
    --create) create=1 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "tpu_pod.sh: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
for required in tpu zone config workdir; do
  if [[ -z "${!required}" ]]; then
    echo "tpu_pod.sh: --$required is required" >&2
    usage
  fi
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
archive="/tmp/coarse2fine-$tpu.tar.gz"
printf -v run_remote '%q ' python3 -m coarse2fine.main "--config=$config" "--workdir=$workdir" --multihost \
  "${extra[@]}"
run_remote="cd coarse2fine && ${run_remote% }"
commands=()
if ((create)); then
  printf -v cmd '%q ' gcloud compute tpus tpu-vm create "$tpu" "--zone=$zone" \
    "--accelerator-type=$accelerator" "--version=$version"
  commands+=("${cmd% }")
fi
printf -v cmd '%q ' git -C "$repo" archive --format=tar.gz --prefix=coarse2fine/ -o "$archive" HEAD
commands+=("${cmd% }")
printf -v cmd '%q ' gcloud compute tpus tpu-vm scp "$archive" "$tpu:coarse2fine.tar.gz" "--zone=$zone" --worker=all
commands+=("${cmd% }")
printf -v cmd '%q ' gcloud compute tpus tpu-vm ssh "$tpu" "--zone=$zone" --worker=all \
  "--command=rm -rf coarse2fine && tar xzf coarse2fine.tar.gz && pip install -q 'jax[tpu]' './coarse2fine[cloud]'"
commands+=("${cmd% }")
printf -v cmd '%q ' gcloud compute tpus tpu-vm ssh "$tpu" "--zone=$zone" --worker=all "--command=$run_remote"
commands+=("${cmd% }")

if ((dry_run)); then
  printf '%s\n' "${commands[@]}"
  exit 0
fi
for cmd in "${commands[@]}"; do
  echo "+ $cmd" >&2
  eval "$cmd"
done
