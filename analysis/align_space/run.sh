#!/usr/bin/env bash
# One run of the alignment-space study: bash analysis/align_space/run.sh SPACE TEMPERATURE LR SEED
# Alignment only, at block 11 (picked by the committed 48-language UDHR analysis), 300 optimizer steps with no early
# stop (--patience 0) so that the whole dev curve is seen; dev retrieval (100 gettext dev pairs per language, raw
# and centred) every 20 steps; the best dev step's adapter is kept and measured on UDHR (50 paragraphs, the 8 aligned
# and 26 never-aligned languages, every layer, before and after). Every other setting is midalign-train's default.
# Resumable: a run that was stopped continues from its last checkpoint (every 20 steps); a finished run is skipped.
# ALIGN_DATA names the alignment corpus (default: the bundled gettext); every run records its sha256 digest.
# Run from the repository root.
set -euo pipefail
SPACE=$1 TEMP=$2 LR=$3 SEED=$4
OUT=analysis/align_space/runs/$SPACE-t$TEMP-lr$LR-s$SEED
if [ -f "$OUT/eval_summary.csv" ]; then echo "done: $OUT"; exit 0; fi
mkdir -p "$OUT"
# One process per run folder: a second launch of the same run (another run_all.sh) leaves it to the first.
exec 9> "$OUT/.lock"
flock -n 9 || { echo "already running: $OUT"; exit 0; }
RESUME=--overwrite
if compgen -G "$OUT/checkpoints/step-*/trainer_state.json" > /dev/null; then RESUME=--resume; fi
# One thread per run: two runs side by side on a 2-core machine beat one run on two threads.
OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/midalign-train \
  --analysis analysis/gemma-3-270m_udhr --align-data "${ALIGN_DATA:-gettext}" --layer auto --align-space "$SPACE" --temperature "$TEMP" --lr "$LR" \
  --seed "$SEED" --dtype bf16 --device cpu --max-steps 300 --eval-every 20 --patience 0 --save-every 20 \
  --eval-batch-size 32 --cache-dir runs/cache-train-eval --out "$OUT" $RESUME 2>> "$OUT/train.log"
