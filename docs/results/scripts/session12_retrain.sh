#!/usr/bin/env bash
# Session 12: retrain Ballot's μ > 0 candidates with other options in a full copy of the default's workdir
# (μ = 0 candidates and the mode choice, which have no disparity term, are kept).
# usage: session12_retrain.sh SET VARIANT [--config.ballot.* ...]   copy: /work/runs/s12_<SET>__<VARIANT>
# SET: a development set (blond wavy cifar10); a held-out one only with AFTER_DECISION=1, for an ablation
# reported after the variant's pre-registered decision (session 13).
# Environment (session 15): CODE (the checkout whose code runs, default /work/main), FROM and TO (the
# workdir prefixes, default s11 and s12: copies /work/runs/<FROM>_<SET> to /work/runs/<TO>_<SET>__<VARIANT>).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
CODE=${CODE:-/work/main}; FROM=${FROM:-s11}; TO=${TO:-s12}
source /work/main/.venv/bin/activate && cd "$CODE"
SET=$1; VARIANT=$2; shift 2
source "$HERE/set_command.sh"; check_set "$SET" || exit 2
CMD=$(set_command "$SET")
SRC=/work/runs/${FROM}_$SET; DST=/work/runs/${TO}_${SET}__$VARIANT
rm -rf "$DST"; cp -a "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache "$DST"/seed_*/sparsity_*/ballot/*/mu_0.* "$DST"/seed_*/sparsity_*/ballot/*/mu_1
date
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
date
