#!/usr/bin/env bash
# Session 21: C13's pre-registered evaluation (docs/results/scripts/session21_preregistration.md): copy C12's workdir
# /work/runs/s15_<SET>__c12 to /work/runs/s15_<SET>__c13 with every candidate and train μ = 10 only (the copy is
# made afresh on every call). usage: session21_c13.sh CODE_DIR [SET ...]   (default: blond cifar10 digits_lt10;
# a held-out SET needs AFTER_DECISION=1). then: cd docs/results/scripts && PYTHONPATH=/work/main python session21_decide.py c13
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: session21_c13.sh CODE_DIR [SET ...]" >&2; exit 2; }
CODE=$1; shift
for S in ${*:-digits_lt10 blond cifar10}; do
  echo "== $S c13 $(date -u +%T)"
  CODE="$CODE" PREFIX=s15 bash "$HERE/session14_extend.sh" "$S" c12 c13 "0 0.3 1 3" \
    --config.ballot.disparity_weights=0,0.3,1,3,10
  echo "== $S c13 done $(date -u +%T)"
done
