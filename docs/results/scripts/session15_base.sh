#!/usr/bin/env bash
# Session 15: (re-)create a set's workdir with LTH, Magnitude and the default Ballot (the machine of
# sessions 11-14 and its /work/runs were replaced), in /work/runs/s15_<SET>.
# usage: session15_base.sh CODE_DIR SET ...   (CODE_DIR: a checkout of the commit to run, e.g. a
# `git worktree` frozen while the library is edited; the command is set_command.sh's)
set -e
CODE=$1; shift
source /work/main/.venv/bin/activate
cd "$CODE"
source docs/results/scripts/set_command.sh
for SET in "$@"; do
  check_set "$SET" || exit 2
  CMD=$(set_command "$SET")
  echo "== $SET $(git rev-parse --short HEAD) $(date -u +%T)"
  python -m $CMD --workdir /work/runs/s15_$SET --config.methods=lth,magnitude,ballot 2>&1 | grep "\[experiments\]" | tail -3
  echo "== $SET done $(date -u +%T)"
done
