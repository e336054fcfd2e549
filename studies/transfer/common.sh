# Sourced by studies/transfer/run.sh: the environment, the language groups, and each task's training data, test sets
# and scoring, so every condition of one task is trained and tested the same way.
# One thread per job: two jobs side by side on a 2-core machine beat one job on two threads.
export OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
BIN=${BIN:-.venv/bin}
HERE=studies/transfer
RUNS=${RUNS:-runs/transfer2}            # adapters and checkpoints (not committed)
ANALYSIS=analysis/gemma-3-270m_udhr     # picks block 11 for --layer auto
# Alignment-only languages: X<->English pairs of the gettext train split, never task data; the same four for both
# tasks, so one alignment-only adapter per seed serves both merges.
ALIGNED="spa_Latn ita_Latn pol_Latn rus_Cyrl"
UNSEEN="por_Latn nld_Latn ces_Latn ukr_Cyrl tur_Latn"
GEN_BATCH=48                             # generation batch: 1.3x the throughput of 16 on short sentences, one thread
TIMES=${TIMES:-$HERE/wall_times.csv}
[ -f "$TIMES" ] || echo "task,step,seed,seconds" > "$TIMES"

timed() {  # timed NAME COMMAND...: run it, append its wall time to $TIMES
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  echo "$TASK,$name,$SEED,$(( $(date +%s) - start ))" >> "$TIMES"
}

case $TASK in
  cldr)  # CLDR long dates: `русский: 1942-01-19 →` must give ` 19 января 1942 г.`; test dates never train or select
    SUPERVISED="eng_Latn deu_Latn fra_Latn"
    TASK_DATA=$HERE/data/cldr/train.jsonl
    make_data() { $BIN/python -m midalign.tasks.cldr --task-langs $SUPERVISED --cldr-kind date_long --n-train 100 \
      --n-dev 10 --n-test 0 --seed 0 --out $HERE/data/cldr; }
    SCORE="--task cldr --cldr-kind date_long --seed 0 --max-new-tokens 16"
    # TEST NAME|ARGS: one test set per line (the cldr adapters are tested on cldr only)
    TESTS=("cldr|$SCORE --task-split test --max-examples 100")
    ;;
  translation)  # short software sentences X -> English; tested in domain (gettext test split) and on legal text
    SUPERVISED="deu_Latn fra_Latn"
    UNSEEN="$UNSEEN ell_Grek"
    TASK_DATA=$HERE/data/translation/train.jsonl
    # Training: 100 sentences per language whose English side has at most 10 words (padding to the longest of a
    # batch made unfiltered batches ~3x slower).
    make_data() { $BIN/python -m midalign.tasks --task translation --task-data gettext --task-split train \
      --directions x2en --task-langs $SUPERVISED --max-words 10 --max-examples 100 --out $HERE/data/translation; }
    SCORE="--task translation --task-data gettext --directions x2en --max-new-tokens 40"
    # In domain: the gettext test split (no model selection reads it), the first 200 sentences per language by id
    # hash, so the languages share most English sentences. Out of domain: X -> English on the 50 UDHR paragraphs
    # (nothing trains on UDHR; por is por_Latn_BR there; answers up to 70 tokens).
    TESTS=("translation|$SCORE --task-split test --max-examples 200"
           "udhr|--task translation --task-data udhr --directions x2en --max-new-tokens 80")
    ;;
  align) return 0 ;;  # the alignment-only adapter: none of the task settings below
  *) echo "unknown task $TASK (cldr, translation or align)" >&2; exit 2 ;;
esac
LANGS="$SUPERVISED $ALIGNED $UNSEEN"
# Every condition gets the task-only run's schedule: 2 epochs of the task data in batches of 16. In alternate mode a
# step is one task and one alignment micro-batch, and the alignment batches are drawn from all 4 x 1000 pairs.
[ -f $TASK_DATA ] || make_data
STEPS=$(( 2 * (($(wc -l < $TASK_DATA) + 15) / 16) ))
TRAIN="--task-data $TASK_DATA --align-langs $ALIGNED --analysis $ANALYSIS --layer auto --epochs 2 --max-steps $STEPS
  --task-batch-size 16 --mode alternate --eval-data none --dtype bf16 --device cpu --seed $SEED --overwrite"
for_test() {  # for_test NAME CODES: the codes as a test set spells them (UDHR: Brazilian Portuguese is por_Latn_BR)
  if [ "$1" = udhr ]; then echo "$2" | sed 's/por_Latn/por_Latn_BR/'; else echo "$2"; fi
}
