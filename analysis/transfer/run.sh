#!/usr/bin/env bash
# One seed of the transfer study on one task (embedded gemma-3-270m, CPU): five conditions on the same task data,
# schedule and seed, each tested in 12 languages (40 dates or 30 sentences each). Run from the repository root:
#   bash analysis/transfer/run.sh TASK SEED        # TASK: cldr, translation, or align (the merge's adapter)
# Conditions (folder names):
#   task     task-only LoRA (--align-weight 0)
#   k11      task + alignment at the layer the analysis picks (block 11; --layer auto), alternate batches
#   k4       task + alignment at a shallow block (~ L/4)
#   k18      task + alignment at the last block
#   merged   the task-only adapter merged (midalign-merge, exact) with an alignment-only adapter trained separately
#            at block 11 (early-stopped on gettext dev retrieval); w_align chosen on the task's dev split
# Each step is skipped when its output exists, so a rerun resumes. Adapters go to runs/transfer/ (not committed);
# configs, step logs and evaluations to analysis/transfer/.
set -euo pipefail
TASK=$1 SEED=$2
source analysis/transfer/common.sh
mkdir -p $RUNS/logs

keep() {  # keep RUN_DIR NAME: the small files of a training or merge run, for the record
  mkdir -p $HERE/runs/$2
  cp $1/config.json $HERE/runs/$2/
  for file in steps.csv dev.csv sweep.csv; do [ ! -f $1/$file ] || cp $1/$file $HERE/runs/$2/; done
}

# The alignment-only adapter (task-independent, shared by both tasks' merges): gettext pairs of the four
# alignment languages at block 11, early stopping on dev retrieval, at most 80 steps. `run.sh align SEED` trains
# only it (run_all.sh runs that as a job of its own); otherwise the first task job to need it does.
align=$RUNS/align-s$SEED
train_align() {
  mkdir -p $align
  (
    flock 9  # the two tasks' jobs of one seed may both get here
    [ -f $align/adapter/adapter_model.safetensors ] ||
      TASK=align timed train_align $BIN/midalign-train --align-langs $ALIGNED --analysis $ANALYSIS \
        --layer auto --max-steps 80 --eval-data none --dtype bf16 --device cpu --seed $SEED --overwrite \
        --out $align 2> $RUNS/logs/align-s$SEED.log
  ) 9> $RUNS/align-s$SEED.lock
  keep $align align-s$SEED
}

if [ $TASK = align ]; then train_align; exit 0; fi

# 1. Training: identical but for the alignment term.
for condition in task:0:auto k11:1:auto k4:1:$SHALLOW k18:1:$LAST; do
  IFS=: read -r name weight layer <<< "$condition"
  run=$RUNS/$TASK/$name-s$SEED
  [ -f $run/adapter/adapter_model.safetensors ] && continue
  timed "train_$name" $BIN/midalign-train $TRAIN --align-weight $weight --layer $layer --out $run \
    2> $RUNS/logs/$TASK-$name-s$SEED.log || { tail -20 $RUNS/logs/$TASK-$name-s$SEED.log; exit 1; }
  keep $run $TASK/$name-s$SEED
done

# 2. Test every trained condition, and the base model once per task.
[ -f $HERE/eval/$TASK/base/groups.csv ] ||
  SEED=- timed eval_base $BIN/midalign-evaluate $TEST --out $HERE/eval/$TASK/base 2> $RUNS/logs/$TASK-eval-base.log
evaluate() {  # evaluate NAME: the test set with RUNS/TASK/NAME-sSEED/adapter
  local out=$HERE/eval/$TASK/$1-s$SEED
  [ -f $out/groups.csv ] && return 0
  timed "eval_$1" $BIN/midalign-evaluate $TEST --adapter $RUNS/$TASK/$1-s$SEED/adapter --out $out \
    2> $RUNS/logs/$TASK-eval-$1-s$SEED.log || { tail -20 $RUNS/logs/$TASK-eval-$1-s$SEED.log; exit 1; }
}
for name in task k11 k4 k18; do evaluate $name; done

# 3. Merge: the task-only adapter + the alignment-only one; w_align in {0, 0.5, 1} chosen on the task's dev split
#    (6 examples per language, all 12 languages), ties to dev retrieval at block 11.
[ -f $align/adapter/adapter_model.safetensors ] || train_align
merged=$RUNS/$TASK/merged-s$SEED
if [ ! -f $merged/adapter/adapter_model.safetensors ]; then
  timed merge $BIN/midalign-merge --task-adapter $RUNS/$TASK/task-s$SEED/adapter --align-adapter $align/adapter \
    --sweep 0,0.5,1 $SCORE --task-split dev --max-examples 6 --task-langs $LANGS \
    --dtype bf16 --device cpu --overwrite --out $merged 2> $RUNS/logs/$TASK-merged-s$SEED.log \
    || { tail -20 $RUNS/logs/$TASK-merged-s$SEED.log; exit 1; }
  keep $merged $TASK/merged-s$SEED
fi

evaluate merged
