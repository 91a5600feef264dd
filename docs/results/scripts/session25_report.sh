#!/usr/bin/env bash
# Session 25, Stage B (session25_preregistration.md): a CelebA set with the training T2, read at seeds 0-9 (the primary
# reading, 95%) and at seeds 0-4 beside it. Exports every part's workdir /work/runs/s25_<SET>_T[_s<a>_<b>] to
# docs/results/records/session25_<SET>[_s<a>_<b>].json (labels dense, lth, magnitude, c12) and writes
# docs/results/<dev|heldout>_<SET>_T_session25.md (seeds 0-9) and ..._s0_4.md (seeds 0-4).
# usage: session25_report.sh SET ...   (from the repository root)
set -e
source .venv/bin/activate
for SET in "$@"; do
  case $SET in blond|wavy) KIND=dev;; attractive|male|smiling|young) KIND=heldout;; *) echo "not a CelebA set: $SET" >&2; exit 2;; esac
  for W in /work/runs/s25_${SET}_T /work/runs/s25_${SET}_T_s*; do
    [ -d "$W" ] || continue
    PART=${W##*/s25_${SET}_T}
    python -m experiments.compare --run dense=$W:dense --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot \
      --export docs/results/records/session25_$SET$PART.json > /dev/null
  done
  RUNS=()
  for R in docs/results/records/session25_$SET.json docs/results/records/session25_${SET}_s*.json; do
    [ -f "$R" ] && RUNS+=(--run lth=$R:lth --run magnitude=$R:magnitude --run c12=$R:c12)
  done
  OUT=docs/results/${KIND}_${SET}_T_session25
  python -m experiments.compare "${RUNS[@]}" --against c12 --bar lth,magnitude --out $OUT.md > /dev/null
  python -m experiments.compare "${RUNS[@]}" --against c12 --bar lth,magnitude --seeds 0,1,2,3,4 --out ${OUT}_s0_4.md > /dev/null
  for F in $OUT.md ${OUT}_s0_4.md; do echo "$SET $F: $(grep '^Cells met' $F)"; done
done
