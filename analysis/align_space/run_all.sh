#!/usr/bin/env bash
# The alignment-space study, two runs at a time, in the order below (most informative first), then the summary.
# Each line of the queue is SPACE TEMPERATURE LR SEED. Finished runs are skipped and stopped ones resume, so this can
# be rerun at any time: QUEUE=file bash analysis/align_space/run_all.sh runs another queue.
set -uo pipefail
cd "$(dirname "$0")/../.."
QUEUE=${QUEUE:-analysis/align_space/queue.txt}
grep -v '^#' "$QUEUE" | grep . | xargs -P "${PARALLEL:-2}" -L 1 bash analysis/align_space/run.sh
.venv/bin/python analysis/align_space/summarize.py
