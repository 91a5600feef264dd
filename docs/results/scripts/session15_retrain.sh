#!/usr/bin/env bash
# Session 15: session12_retrain.sh on session 15's workdirs: copy /work/runs/s15_<SET> to
# /work/runs/s15_<SET>__<VARIANT>, delete the records, the chosen μ and every μ > 0 candidate of
# Ballot (μ = 0 and the mode choice have no disparity term and are kept), retrain them with the options.
# usage: session15_retrain.sh CODE_DIR SET VARIANT [--config.ballot.* ...]
# SET: a development set; a held-out one only with AFTER_DECISION=1 (set_command.sh's check_set)
set -e
CODE=$1; SET=$2; VARIANT=$3; shift 3
source /work/main/.venv/bin/activate
cd "$CODE"
source docs/results/scripts/set_command.sh; check_set "$SET" || exit 2
CMD=$(set_command "$SET")
SRC=/work/runs/s15_$SET; DST=/work/runs/s15_${SET}__$VARIANT
rm -rf "$DST"; cp -a "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache "$DST"/seed_*/sparsity_*/ballot/*/mu_0.* "$DST"/seed_*/sparsity_*/ballot/*/mu_1
echo "== $SET $VARIANT $(git rev-parse --short HEAD) $(date -u +%T)"
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
echo "== $SET $VARIANT done $(date -u +%T)"
