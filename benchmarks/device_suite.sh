#!/usr/bin/env bash
# The accelerator checks of the input pipeline and the methods' steps, in one run (under 8 minutes on one GPU).
#
#   bash benchmarks/device_suite.sh           # on a GPU machine: writes benchmarks/results/*_gpu.{md,json}
#   bash benchmarks/device_suite.sh --small   # the same scripts at CPU sizes, into a temporary folder (a check)
#
# Runs benchmarks/device_suite.py (each method's ResNet-50 bfloat16 step at batch 256 and 224 px, with the
# device augmentation and on pre-augmented inputs; PyTorch's ResNet-50 step; the E-step at 1M x 500;
# neighbour mining at 1M x 2048; the few-shot evaluation), then benchmarks/input_pipeline.py at 224 px with
# all host cores. Python packages the machine lacks (grain, ott-jax, ml-collections, tensorboardX,
# simplejpeg, ...) may travel as wheels in .whl/: they are installed into /tmp/site first. Where $OUT is
# set (the device tool), the markdown tables and a tarball of the JSON files are copied there.
set -euo pipefail
cd "$(dirname "$0")/.."

small=0
for arg in "$@"; do
  case "$arg" in
    --small) small=1 ;;
    *) echo "device_suite.sh: unknown argument $arg (only --small)" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-python3}"
if [[ -d .whl ]] && compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
cores="$(nproc)"

if (( small )); then
  results="$(mktemp -d)"
  "$python" benchmarks/device_suite.py --small --out_suffix=_cpu_check --out_dir="$results"
  "$python" benchmarks/input_pipeline.py --size=224 --quick --recipes=strong,falcon --workers=0,2 \
      --legacy_commit= --out=input_pipeline_224_cpu_check --results_dir="$results"
  echo "device_suite.sh --small: results in $results"
  exit 0
fi

timeout 420 "$python" benchmarks/device_suite.py --out_suffix=_gpu
timeout 150 "$python" benchmarks/input_pipeline.py --size=224 --files=1000 --recipes=strong,falcon \
    --workers="0,$((cores / 2)),$cores" --legacy_commit= --out=input_pipeline_224_gpu
if [[ -n "${OUT:-}" ]]; then
  cp benchmarks/results/*_gpu.md "$OUT"/
  tar -czf "$OUT/device_suite_json.tgz" benchmarks/results/*_gpu.json
fi
