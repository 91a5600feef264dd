#!/usr/bin/env bash
# Session 11: re-choose Ballot in a hard-linked copy of the default's workdir (candidates resumed, nothing retrained).
# usage: rechoose.sh SET VARIANT [--config.ballot.* ...]   SET: a name of set_command.sh; copy: /work/runs/s11_<SET>__<VARIANT>
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd /work/main && source .venv/bin/activate
SET=$1; VARIANT=$2; shift 2
source "$HERE/set_command.sh"; CMD=$(set_command "$SET")
SRC=/work/runs/s11_$SET; DST=/work/runs/s11_${SET}__$VARIANT
rm -rf "$DST"; cp -al "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
