#!/usr/bin/env bash
# One seed of the transfer study on one task (embedded gemma-3-270m, CPU). Run from the repository root:
#   bash studies/transfer/run.sh TASK SEED        # TASK: cldr, translation, or align (the merge's adapter)
# Conditions (folder names), all trained on the same task data, schedule and seed:
#   task      task-only LoRA (--align-weight 0)
#   align     task + alignment at the picked layer with midalign-train's default loss (--align-space standardized)
#   raw       the same with the paper's loss (--align-space raw)
#   control   the same as align, but every X sentence paired with another pair's English side (--shuffle-pairs):
#             the same texts, loss, layer and steps without any translation pairing (exposure control)
#   merged    the task-only adapter merged (midalign-merge, exact) with an alignment-only adapter trained separately
#             with the default loss; w_align in {0, 0.5, 1} chosen on the task's dev split
# Each step is skipped when its output exists, so a rerun resumes. Adapters go to $RUNS (not committed); configs,
# step logs and evaluations (predictions, scores, item scores) to studies/transfer/.
set -euo pipefail
TASK=$1 SEED=$2
source studies/transfer/common.sh
mkdir -p $RUNS/logs

keep() {  # keep RUN_DIR NAME: the small files of a training or merge run, for the record
  mkdir -p $HERE/runs/$2
  cp $1/config.json $HERE/runs/$2/
  for file in steps.csv dev.csv sweep.csv; do [ ! -f $1/$file ] || cp $1/$file $HERE/runs/$2/; done
}

# The alignment-only adapter (task-independent, shared by both tasks' merges): the four alignment languages at the
# picked layer, the default loss, early stopping on dev retrieval, at most 300 steps.
align=$RUNS/align-s$SEED
train_align() {
  mkdir -p $align
  (
    flock 9  # the two tasks' jobs of one seed may both get here
    [ -f $align/adapter/adapter_model.safetensors ] ||
      TASK=align timed train_align $BIN/midalign-train --align-langs $ALIGNED --analysis $ANALYSIS \
        --layer auto --max-steps 300 --eval-data none --dtype bf16 --device cpu --seed $SEED --overwrite \
        --out $align 2> $RUNS/logs/align-s$SEED.log
  ) 9> $RUNS/align-s$SEED.lock
  keep $align align-s$SEED
}

if [ $TASK = align ]; then train_align; exit 0; fi

# 1. Training: identical but for the alignment term.
for condition in "task|--align-weight 0" "align|--align-weight 1" "raw|--align-weight 1 --align-space raw" \
                 "control|--align-weight 1 --shuffle-pairs"; do
  name=${condition%%|*} extra=${condition#*|}
  run=$RUNS/$TASK/$name-s$SEED
  [ -f $run/adapter/adapter_model.safetensors ] && continue
  # shellcheck disable=SC2086
  timed "train_$name" $BIN/midalign-train $TRAIN $extra --out $run \
    2> $RUNS/logs/$TASK-$name-s$SEED.log || { tail -20 $RUNS/logs/$TASK-$name-s$SEED.log; exit 1; }
  keep $run $TASK/$name-s$SEED
done

# 2. Merge: the task-only adapter + the alignment-only one; w_align chosen on the task's dev split (6 examples per
#    language, all languages), ties to dev retrieval at the picked layer.
[ -f $align/adapter/adapter_model.safetensors ] || train_align
merged=$RUNS/$TASK/merged-s$SEED
if [ ! -f $merged/adapter/adapter_model.safetensors ]; then
  # shellcheck disable=SC2086
  timed merge $BIN/midalign-merge --task-adapter $RUNS/$TASK/task-s$SEED/adapter --align-adapter $align/adapter \
    --sweep 0,0.5,1 $SCORE --task-split dev --max-examples 6 --task-langs $LANGS \
    --dtype bf16 --device cpu --overwrite --out $merged 2> $RUNS/logs/$TASK-merged-s$SEED.log \
    || { tail -20 $RUNS/logs/$TASK-merged-s$SEED.log; exit 1; }
  keep $merged $TASK/merged-s$SEED
fi

# 3. Test every condition (and the base model once per test set) on every test set of the task.
for spec in "${TESTS[@]}"; do
  test=${spec%%|*} args=${spec#*|}
  langs=$(for_test $test "$LANGS")
  groups="--supervised $SUPERVISED --alignment $ALIGNED --unseen $(for_test $test "$UNSEEN")"
  for name in base task align raw control merged; do
    out=$HERE/eval/$test/$name$([ $name = base ] || echo "-s$SEED")
    [ -f $out/groups.csv ] && continue
    adapter=$([ $name = base ] || echo "--adapter $RUNS/$TASK/$name-s$SEED/adapter")
    # shellcheck disable=SC2086
    SEED=$([ $name = base ] && echo - || echo $SEED) timed "eval_${test}_$name" $BIN/midalign-evaluate $args \
      --task-langs $langs $groups $adapter --batch-size $GEN_BATCH --dtype bf16 --device cpu --overwrite \
      --out $out 2> $RUNS/logs/$TASK-eval-$test-$name-s$SEED.log \
      || { tail -20 $RUNS/logs/$TASK-eval-$test-$name-s$SEED.log; exit 1; }
  done
done
