#!/usr/bin/env bash
# Session 17: the held-out report of a set run with the session-16 default (adversary_balance="groups",
# 79f9144) by session15_base.sh (AFTER_DECISION=1), beside the previous default retrained on the same
# workdir as "c7" (session15_retrain.sh SET c7 --config.ballot.adversary_balance=examples) and C10 (the
# default since session 17, epsilon_floor="split_se") re-chosen as "c10" (session17_rechoose.sh), when
# those copies exist. Writes docs/results/records/<TAG>_<SET>.json and docs/results/heldout_<SET>_<TAG>.md.
# Session 18 ran the held-out CelebA sets with C10's code (7df6202), so there `ballot` is C10 and the
# copies compared are the session-16 default re-chosen as "c9" (--config.ballot.epsilon_floor=none):
# VARIANTS="c9" TAG=session18.
# usage: [VARIANTS="c7 c10"] [TAG=session17] session17_heldout_report.sh SET ...   (from the repository root)
set -e
source /work/main/.venv/bin/activate
VARIANTS=${VARIANTS:-c7 c10}; TAG=${TAG:-session17}
for SET in "$@"; do
  F=/work/runs/s15_$SET
  RUNS=(--run lth=$F:lth --run magnitude=$F:magnitude --run ballot=$F:ballot); AGAINST=ballot
  for V in $VARIANTS; do  # e.g. the previous default retrained (c7); C10 re-chosen (c10)
    if ls /work/runs/s15_${SET}__$V/seed_*/sparsity_*/ballot.record.json > /dev/null 2>&1; then
      RUNS+=(--run $V=/work/runs/s15_${SET}__$V:ballot); AGAINST=$AGAINST,$V
    fi
  done
  python -m experiments.compare "${RUNS[@]}" --against $AGAINST --bar lth,magnitude \
    --export docs/results/records/${TAG}_$SET.json --out docs/results/heldout_${SET}_$TAG.md > /dev/null
  echo "$SET: docs/results/heldout_${SET}_$TAG.md ($AGAINST)"
done
