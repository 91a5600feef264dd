#!/usr/bin/env bash
# Session 17: re-choose Ballot in a copy of the current default's workdir, nothing retrained: the
# candidates of adversary_balance="groups" are in /work/runs/s15_<SET>__c9 for the development sets
# (session 15-16) and in /work/runs/s15_<SET> for the held-out ones (session 17, AFTER_DECISION=1);
# the copy is /work/runs/s15_<SET>__<VARIANT>, run with CODE_DIR's code and the options given.
# usage: session17_rechoose.sh CODE_DIR SET VARIANT [--config.ballot.* ...]
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
CODE=$1; SET=$2; VARIANT=$3; shift 3
source /work/main/.venv/bin/activate && cd "$CODE"
source "$HERE/set_command.sh"; check_set "$SET" || exit 2
CMD=$(set_command "$SET")
SRC=/work/runs/s15_${SET}__c9; [ -d "$SRC" ] || SRC=/work/runs/s15_$SET; DST=/work/runs/s15_${SET}__$VARIANT
rm -rf "$DST"; cp -a "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache
echo "== $SET $VARIANT $(date -u +%T)"
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
echo "== $SET $VARIANT done $(date -u +%T)"
