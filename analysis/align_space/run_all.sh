#!/usr/bin/env bash
# The alignment-space study: the queue's runs (lines SPACE TEMPERATURE LR SEED) at most PARALLEL (2) at a time,
# counted over every runner, then the summary. The queue is read again before each launch, so it can be edited
# while this runs (the first line whose run is neither finished nor running goes next). Finished runs are skipped,
# stopped ones resume, a run already going (its lock held) is left alone: rerun this at any time.
#   bash analysis/align_space/run_all.sh            QUEUE=file bash analysis/align_space/run_all.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
QUEUE=${QUEUE:-analysis/align_space/queue.txt}
PARALLEL=${PARALLEL:-2}
RUNS=analysis/align_space/runs
running() { pgrep -fc "midalign-train .*--out $RUNS/" || true; }
next() {  # the first queued run that is neither finished nor running
    grep -v '^#' "$QUEUE" | grep . | while read -r SPACE TEMP LR SEED; do
        OUT=$RUNS/$SPACE-t$TEMP-lr$LR-s$SEED
        [ -f "$OUT/eval_summary.csv" ] && continue
        [ -f "$OUT/.lock" ] && ! flock -n "$OUT/.lock" true && continue
        echo "$SPACE $TEMP $LR $SEED"
        break
    done
}
while :; do
    while [ "$(running)" -ge "$PARALLEL" ]; do sleep 20; done
    RUN=$(next)
    [ -z "$RUN" ] && break
    # shellcheck disable=SC2086
    bash analysis/align_space/run.sh $RUN &
    sleep 60  # let it take its lock and start before looking again
done
wait
while [ "$(running)" -gt 0 ]; do sleep 20; done
.venv/bin/python analysis/align_space/summarize.py
