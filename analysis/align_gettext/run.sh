#!/usr/bin/env bash
# One alignment-only run of the study: bash analysis/align_gettext/run.sh LAYER SEED   (LAYER: auto or 1..18)
# --max-steps 150 bounds the CPU time (early stopping on dev retrieval may stop sooner). Every other setting is
# midalign-train's default: the gettext corpus, the 8 default alignment languages, UDHR evaluation of those and
# 26 unseen languages, dev early stopping. Run from the repository root.
set -euo pipefail
LAYER=$1 SEED=$2
HERE=analysis/align_gettext
OUT=$HERE/runs/k$LAYER-s$SEED
mkdir -p "$OUT"
# One thread per run: two runs side by side on a 2-core machine beat one run on two threads.
# --analysis: the committed 48-language UDHR analysis picks the layer (block 11) for --layer auto.
OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/midalign-train \
  --analysis analysis/gemma-3-270m_udhr --layer "$LAYER" --seed "$SEED" --dtype bf16 --device cpu \
  --max-steps 150 --cache-dir runs/cache-train-eval --out "$OUT" --overwrite 2> "$OUT/train.log"
