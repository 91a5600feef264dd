#!/usr/bin/env bash
# Session 19: C12's pre-registered evaluation (docs/results/scripts/session19_preregistration.md) on the
# development sets, with CODE_DIR's code: re-create the current default's workdir /work/runs/s15_<SET>
# (LTH, Magnitude, Ballot(); resumable, skipped work is not redone), then the copy /work/runs/s15_<SET>__c12
# without the μ = 0.1 candidates, trained at the grid (0, 0.3, 1, 3) (only μ = 3 is new; the copy is made
# afresh on every call, so a re-run after an interruption retrains a set's μ = 3 candidates).
# usage: session19_c12.sh CODE_DIR [SET ...]   (default: the decision sets, shortest first: digits_lt10 blond cifar10)
# then:  cd docs/results/scripts && PYTHONPATH=/work/main python session15_decide.py c12
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: session19_c12.sh CODE_DIR [SET ...]" >&2; exit 2; }
CODE=$1; shift
SETS=${*:-digits_lt10 blond cifar10}
for S in $SETS; do
  bash "$HERE/session15_base.sh" "$CODE" "$S"
  echo "== $S c12 $(date -u +%T)"
  CODE="$CODE" PREFIX=s15 bash "$HERE/session14_extend.sh" "$S" - c12 "0 0.3 1" \
    --config.ballot.disparity_weights=0,0.3,1,3
  echo "== $S c12 done $(date -u +%T)"
done
