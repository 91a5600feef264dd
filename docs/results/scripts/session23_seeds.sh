#!/usr/bin/env bash
# Session 23, E1 (docs/results/scripts/session23_preregistration.md): seeds 5-9 of LTH, Magnitude and the default
# Ballot on the held-out sets, in /work/runs/s23_<SET>_s5_9 (resumable: finished work is skipped).
# usage: [SEEDS=5,6,7] session23_seeds.sh CODE_DIR [SET ...]   (default: every held-out set, shortest first)
# SEEDS runs a part of seeds 5-9 in its own workdir, /work/runs/s23_<SET>_s<first>_<last> (session 24: a set
# split over two sessions, whose workdirs do not outlive them; each seed's runs depend on that seed alone).
set -e
CODE=$1; shift
SETS=${*:-synthetic attractive cifar10_lt10 male smiling young}
SEEDS=${SEEDS:-5,6,7,8,9}
source /work/main/.venv/bin/activate
cd "$CODE"
source docs/results/scripts/set_command.sh
for SET in $SETS; do
  AFTER_DECISION=1 check_set "$SET" || exit 2
  CMD=$(set_command "$SET")
  CMD=${CMD/--config.seeds=0,1,2,3,4/--config.seeds=$SEEDS}
  echo "== $SET seeds $SEEDS $(git rev-parse --short HEAD) $(date -u +%T)"
  python -m $CMD --workdir /work/runs/s23_${SET}_s${SEEDS%%,*}_${SEEDS##*,} --config.methods=lth,magnitude,ballot 2>&1 | grep "\[experiments\]" | tail -3
  echo "== $SET done $(date -u +%T)"
done
