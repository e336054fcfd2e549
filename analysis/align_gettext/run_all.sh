#!/usr/bin/env bash
# The whole study, two runs at a time (10-25 min per run on one core, by depth): the analysis-picked layer with
# seeds 0 1 2 first, then the fixed layers 3 6 15 18 with seeds 0 1; then the summary tables and figures.
set -euo pipefail
{
  for seed in 0 1 2; do echo "auto $seed"; done
  for seed in 0 1; do for layer in 3 6 15 18; do echo "$layer $seed"; done; done
} | xargs -P 2 -L 1 bash analysis/align_gettext/run.sh
.venv/bin/python analysis/align_gettext/summarize.py
