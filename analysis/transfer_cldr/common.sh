# Shared by analysis/transfer_cldr/run.sh and analysis/merge_cldr/run.sh (sourced after SEED and TIMES are set):
# the environment, the language groups and the test evaluation, so both studies score exactly the same way.
# One thread: on a busy 2-core machine that is faster than two (measured: task micro-step 6 s with 1 thread in bf16
# vs ~30 s with 2 threads while other jobs ran).
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PY=${PY:-python}
SUPERVISED="eng_Latn deu_Latn fra_Latn"
ALIGNED="spa_Latn ita_Latn pol_Latn rus_Cyrl"
UNSEEN="por_Latn nld_Latn ces_Latn ukr_Cyrl tur_Latn"
# Test: 40 dates in each of the 12 languages, grouped by how the language took part in training.
EVAL="--task cldr --cldr-kind date_long --split test --max-examples 40 --seed 0 --langs $SUPERVISED $ALIGNED $UNSEEN
  --supervised $SUPERVISED --alignment $ALIGNED --unseen $UNSEEN --batch-size 16 --max-new-tokens 16 --dtype bf16
  --device cpu --overwrite"
[ -f "$TIMES" ] || echo "step,seed,seconds" > "$TIMES"

timed() {  # timed NAME COMMAND...: run it, append its wall time to $TIMES
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  echo "$name,$SEED,$(( $(date +%s) - start ))" >> "$TIMES"
}
