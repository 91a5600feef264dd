#!/usr/bin/env bash
# Session 25, Stage B (docs/results/scripts/session25_preregistration.md): LTH, Magnitude Pruning and the default
# Ballot (C12) at seeds 0-9 with the chosen CelebA training T (experiments.celeba's default since Stage A), in
# /work/runs/s25_<SET>_T (resumable: finished work is skipped). Development targets first, then the held-out ones.
# usage: [SEEDS=0,1,2] session25_records.sh [SET ...]   (default: blond wavy attractive male smiling young)
# SEEDS runs a part of seeds 0-9 in its own workdir, /work/runs/s25_<SET>_T_s<first>_<last> (a set split over
# sessions; each seed's runs depend on that seed alone).
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
SETS=${*:-blond wavy attractive male smiling young}
for SET in $SETS; do
  case $SET in blond|wavy|attractive|male|smiling|young) ;; *) echo "$SET is not a CelebA set" >&2; exit 2;; esac
  AFTER_DECISION=1 check_set "$SET" || exit 2
  CMD=$(set_command "$SET")
  W=/work/runs/s25_${SET}_T; [ -n "$SEEDS" ] && W=${W}_s${SEEDS%%,*}_${SEEDS##*,}
  RUN_SEEDS=${SEEDS:-0,1,2,3,4,5,6,7,8,9}
  CMD=${CMD/--config.seeds=0,1,2,3,4/--config.seeds=$RUN_SEEDS}
  echo "== $SET seeds $RUN_SEEDS $(git rev-parse --short HEAD) $(date -u +%T)"
  python -m $CMD --workdir $W --config.methods=dense,lth,magnitude,ballot 2>&1 | grep "\[experiments\]" | tail -3
  echo "== $SET done $(date -u +%T)"
done
