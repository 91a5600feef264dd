#!/usr/bin/env bash
# Session 14: a variant that extends another's μ grid, reusing its finished candidates: copy
# /work/runs/<PREFIX>_<SET>__<FROM> to /work/runs/<PREFIX>_<SET>__<TO> (env PREFIX, default s12; FROM
# "-": the workdir /work/runs/<PREFIX>_<SET> itself; env CODE: the checkout to run, default /work/main), drop the records, the chosen μ and every
# candidate whose μ is not in KEEP (space-separated, e.g. "0 0.3 1"), then run the set's experiment with
# the given options, which retrains only the missing candidates.
# usage: session14_extend.sh SET FROM TO "KEEP" [--config.ballot.* ...]
# SET: a development set; a held-out one only with AFTER_DECISION=1 (see session12_retrain.sh)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
source /work/main/.venv/bin/activate && cd "${CODE:-/work/main}"
PREFIX=${PREFIX:-s12}
SET=$1; FROM=$2; TO=$3; KEEP=$4; shift 4
source "$HERE/set_command.sh"; check_set "$SET" || exit 2
CMD=$(set_command "$SET")
SRC=/work/runs/${PREFIX}_${SET}__$FROM; [ "$FROM" = - ] && SRC=/work/runs/${PREFIX}_$SET
DST=/work/runs/${PREFIX}_${SET}__$TO
rm -rf "$DST"; cp -a "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache
for dir in "$DST"/seed_*/sparsity_*/ballot/*/mu_*; do
  mu=${dir##*/mu_}; case " $KEEP " in *" $mu "*) ;; *) rm -rf "$dir";; esac
done
date
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
date
