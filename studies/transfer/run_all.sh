#!/usr/bin/env bash
# Every seed of both tasks, two jobs at a time (one thread each): bash studies/transfer/run_all.sh [SEEDS...]
# (default seeds 0-4). Per seed: the alignment-only adapter (shared by both tasks' merges), then each task's
# conditions and tests. run.sh skips what is done, so rerunning resumes. Then: python studies/transfer/summarize.py
set -euo pipefail
SEEDS=${*:-0 1 2 3 4}
mkdir -p runs/transfer2/logs
for seed in $SEEDS; do printf 'align %s\ncldr %s\ntranslation %s\n' "$seed" "$seed" "$seed"; done |
  xargs -P "${JOBS:-2}" -L 1 bash -c 'bash studies/transfer/run.sh "$0" "$1" > "runs/transfer2/logs/run-$0-$1.log" 2>&1 ||
    echo "failed: $0 $1 (runs/transfer2/logs/run-$0-$1.log)"'
