#!/usr/bin/env bash
# The three benchmarks on a GPU, tables and profiles into analysis/benchmarks/gpu/ (about 5 min on an H100/H200:
# two model loads, two compiles for extraction and one for the fused metric scorer, seconds for the metrics and the
# alignment step).
#
#   bash analysis/benchmarks/gpu.sh                       # --device cuda, full sizes, fp32 and bf16, --compile
#   bash analysis/benchmarks/gpu.sh --device cpu --quick  # tiny sizes on the CPU: the test suite's smoke run
#
# Options: --device cuda|cpu (default cuda), --quick (tiny sizes, no compile, no profiles), --out DIR (default
# analysis/benchmarks/gpu), --model ID_OR_FOLDER (default: the embedded gemma-3-270m). Run from anywhere; the
# Python that runs it is $PYTHON, else python. Each table records the device's name and the load average.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-python}"
device=cuda
quick=0
out="$root/analysis/benchmarks/gpu"
model=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --out) out="$2"; shift 2 ;;
        --model) model=(--model "$2"); shift 2 ;;
        *) echo "gpu.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
cd "$root"
# Compiled kernels cached beside the tables: a second run of this script shows what the inductor cache saves.
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$out/inductor-cache}"

if [[ $quick == 1 ]]; then
    extraction=(--dtypes fp32 --languages 1 --sentences 4 --loop-sentences 2 --batch-size 4)
    metrics=(--langs 12 --layers 2 --sentences 6 --hidden 16)
    align=(--quick --batch-size 2 --repeats 1 --layers 2)
else
    extraction=(--dtypes fp32 bf16 --compile --profile "$out/extraction_profile.txt")
    metrics=(--fused --profile "$out/metrics_profile.txt")
    align=(--dtype bf16)
fi

set -x
"$python" analysis/bench_extraction.py --device "$device" "${model[@]}" "${extraction[@]}" --out "$out/extraction.csv"
"$python" analysis/bench_metrics.py --device "$device" "${metrics[@]}" --out "$out/metrics.csv"
"$python" analysis/bench_align_step.py --device "$device" "${model[@]}" "${align[@]}" --out "$out/align_step.csv"
