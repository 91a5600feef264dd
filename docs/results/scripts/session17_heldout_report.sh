#!/usr/bin/env bash
# Session 17: the held-out report of a set run with the session-16 default (adversary_balance="groups",
# 79f9144) by session15_base.sh (AFTER_DECISION=1), beside the previous default retrained on the same
# workdir as "c7" (session15_retrain.sh SET c7 --config.ballot.adversary_balance=examples) when that copy
# exists. Writes docs/results/records/session17_<SET>.json and docs/results/heldout_<SET>_session17.md.
# usage: session17_heldout_report.sh SET ...   (run from the repository root)
set -e
source /work/main/.venv/bin/activate
for SET in "$@"; do
  F=/work/runs/s15_$SET; C=/work/runs/s15_${SET}__c7
  RUNS=(--run lth=$F:lth --run magnitude=$F:magnitude --run ballot=$F:ballot); AGAINST=ballot
  if [ -f "$C/results.json" ] || ls "$C"/seed_*/sparsity_*/ballot.record.json > /dev/null 2>&1; then
    RUNS+=(--run c7=$C:ballot); AGAINST=ballot,c7
  fi
  python -m experiments.compare "${RUNS[@]}" --against $AGAINST --bar lth,magnitude \
    --export docs/results/records/session17_$SET.json --out docs/results/heldout_${SET}_session17.md > /dev/null
  echo "$SET: docs/results/heldout_${SET}_session17.md ($AGAINST)"
done
