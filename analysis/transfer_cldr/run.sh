#!/usr/bin/env bash
# Cross-lingual transfer on the offline CLDR task with the embedded gemma-3-270m: task-only LoRA (baseline) vs
# task + middle-layer alignment (mid-align), same data, seed and schedule. Run from the repository root:
#   bash analysis/transfer_cldr/run.sh [SEED]
# Training folders (adapters, checkpoints) go to runs/transfer_cldr/ (not committed); small outputs to
# analysis/transfer_cldr/.
set -euo pipefail
SEED=${1:-0}
HERE=analysis/transfer_cldr
RUNS=runs/transfer_cldr
TIMES=$HERE/wall_times.csv
source analysis/transfer_cldr/common.sh
mkdir -p $RUNS

# 1. Task data: long-date localization in the three supervised languages (100 dates each; dev held out).
$PY -m midalign.tasks.cldr --langs $SUPERVISED --kind date_long --n-train 100 --n-dev 10 --n-test 0 \
  --seed 0 --out $HERE/data

# 2. Training: identical except --align-weight (0 = the task-only baseline; 1 = alternate task/alignment batches).
COMMON="--task-data $HERE/data/train.jsonl --align-data udhr --align-langs $ALIGNED
  --analysis analysis/gemma-3-270m_udhr --epochs 2 --batch-size 16 --max-length 48 --lr 5e-4 --dtype bf16
  --device cpu --no-eval --seed $SEED --overwrite"
for variant in baseline:0 midalign:1; do
  name=${variant%%:*}
  [ -f $RUNS/$name-s$SEED/adapter/adapter_model.safetensors ] && continue  # trained already
  timed "train_$name" $PY -m midalign.train $COMMON --align-weight "${variant##*:}" --out $RUNS/$name-s$SEED \
    2> $RUNS/train-$name-s$SEED.log || { tail -20 $RUNS/train-$name-s$SEED.log; exit 1; }
  mkdir -p $HERE/$name-s$SEED
  cp $RUNS/$name-s$SEED/config.json $RUNS/$name-s$SEED/steps.csv $HERE/$name-s$SEED/
done

# 3. Evaluation: 40 test dates in 12 languages; groups from the mid-align run (same languages for both runs).
if [ ! -f $HERE/eval/base/scores.csv ]; then  # the base model without an adapter (seed-independent)
  timed eval_base $PY -m midalign.evaluate $EVAL --out $HERE/eval/base 2> $RUNS/eval-base.log
fi
for name in baseline midalign; do
  timed "eval_$name" $PY -m midalign.evaluate $EVAL --adapter $RUNS/$name-s$SEED/adapter \
    --out $HERE/eval/$name-s$SEED 2> $RUNS/eval-$name-s$SEED.log
done
# Differences are to the first run: mid-align - baseline (and the untuned base model - baseline).
$PY -m midalign.evaluate --compare $HERE/eval/baseline-s$SEED $HERE/eval/midalign-s$SEED $HERE/eval/base \
  --out $HERE/eval/compare-s$SEED --overwrite
