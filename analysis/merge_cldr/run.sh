#!/usr/bin/env bash
# Task adapter + separately trained alignment adapter, merged exactly (midalign-merge), against joint training, on
# the offline CLDR transfer task of analysis/transfer_cldr (embedded gemma-3-270m). Run from the repository root
# after analysis/transfer_cldr/run.sh (it trains the task-only and the joint adapters and evaluates them):
#   bash analysis/merge_cldr/run.sh [SEED]
# Merged adapters and the matched alignment run go to analysis/merge_cldr/*/ (weights git-ignored).
set -euo pipefail
SEED=${1:-0}
HERE=analysis/merge_cldr
TRANSFER=runs/transfer_cldr
LOGS=runs/merge_cldr
TIMES=$HERE/wall_times.csv
source analysis/transfer_cldr/common.sh
mkdir -p $LOGS

# 1. A matched alignment-only adapter: the joint run's alignment languages and settings, no task data; 38 steps =
#    the 38 alignment micro-batches the joint run saw (19 rounds x 2 epochs).
[ -f $HERE/align_matched-s$SEED/adapter/adapter_model.safetensors ] ||
  timed train_align_matched $PY -m midalign.train --align-data udhr --align-langs $ALIGNED \
    --analysis analysis/gemma-3-270m_udhr --epochs 4 --max-steps 38 --batch-size 16 --max-length 48 --lr 5e-4 \
    --dtype bf16 --device cpu --seed $SEED --overwrite --out $HERE/align_matched-s$SEED \
    2> $LOGS/train-align-matched-s$SEED.log

# 2. Merge the task-only adapter with the matched alignment adapter; w_align picked on dev data: CLDR dev exact
#    match in all 12 languages (10 dates each), ties to held-out UDHR retrieval at layer 11 in the aligned languages.
SWEEP="--sweep 0,0.25,0.5,0.75,1.0 --task cldr --cldr-kind date_long --task-split dev --max-examples 10
  --task-langs $SUPERVISED $ALIGNED $UNSEEN --max-new-tokens 16 --dtype fp32 --device cpu --overwrite"
timed merge_matched $PY -m midalign.merge --task-adapter $TRANSFER/baseline-s$SEED/adapter \
  --align-adapter $HERE/align_matched-s$SEED/adapter $SWEEP --out $HERE/merged_matched-s$SEED \
  2> $LOGS/merge-matched-s$SEED.log

# 2b. Exactness on the real model: the merged adapter's weights and outputs against W + dW_task + w_align dW_align.
timed exactness $PY $HERE/exactness.py --seed $SEED --w-align 0.5

# 3. Test: the very evaluation of analysis/transfer_cldr/run.sh (40 test dates in 12 languages, same groups).
timed eval_merged_matched $PY -m midalign.evaluate $EVAL --adapter $HERE/merged_matched-s$SEED/adapter \
  --out $HERE/eval/merged_matched-s$SEED 2> $LOGS/eval-merged-matched-s$SEED.log
T=analysis/transfer_cldr/eval
for name in base baseline-s$SEED midalign-s$SEED; do  # written by analysis/transfer_cldr/run.sh, maybe still running
  until [ -f $T/$name/groups.csv ]; do sleep 30; done
done
$PY -m midalign.evaluate --compare $T/base $T/baseline-s$SEED $T/midalign-s$SEED \
  $HERE/eval/merged_matched-s$SEED --out $HERE/eval/compare-s$SEED --overwrite

# 4. Held-out UDHR retrieval at every layer for every configuration (base, adapters alone, merged, joint).
timed retrieval $PY $HERE/retrieval.py --seed $SEED 2> $LOGS/retrieval-s$SEED.log
