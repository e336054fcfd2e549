#!/usr/bin/env bash
# The alignment-space study: every line of the queue (SPACE TEMPERATURE LR SEED) in order, at most PARALLEL (2) runs
# of this study at a time, counted over every runner (so a second run_all.sh with another queue shares the slots),
# then the summary. Finished runs are skipped, stopped ones resume, a run already going is left to its runner, so
# this can be rerun at any time: QUEUE=file bash analysis/align_space/run_all.sh runs another queue.
set -uo pipefail
cd "$(dirname "$0")/../.."
QUEUE=${QUEUE:-analysis/align_space/queue.txt}
PARALLEL=${PARALLEL:-2}
running() { pgrep -fc "midalign-train .*--out analysis/align_space/runs/" || true; }
grep -v '^#' "$QUEUE" | grep . | while read -r SPACE TEMP LR SEED; do
    while [ "$(running)" -ge "$PARALLEL" ]; do sleep 20; done
    bash analysis/align_space/run.sh "$SPACE" "$TEMP" "$LR" "$SEED" &
    sleep 30  # let it start before counting again
done
wait
while [ "$(running)" -gt 0 ]; do sleep 20; done
.venv/bin/python analysis/align_space/summarize.py
