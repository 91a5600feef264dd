#!/usr/bin/env bash
# Session 23, E1 (session23_preregistration.md): a held-out set read on seeds 0-9 -- seeds 0-4 from the kept records
# (records/session21_<SET>.json, label = Male: session22_male.json; labels lth, magnitude, c12), seeds 5-9 from
# /work/runs/s23_<SET>_s5_9 -- at the 95% and at the second look's 97.5%. Writes
# docs/results/records/session23_<SET>.json (seeds 5-9, labels lth, magnitude, c12; a set run in parts: one file a
# part, session23_<SET>_s<first>_<last>.json) and
# docs/results/heldout_<SET>_e1_session23[_975].md.
# usage: session23_report.sh SET ...   (from the repository root)
set -e
source /work/main/.venv/bin/activate
for SET in "$@"; do
  OLD=docs/results/records/session21_$SET.json; [ "$SET" = male ] && OLD=docs/results/records/session22_male.json
  # seeds 5-9: one workdir /work/runs/s23_<SET>_s5_9, or parts of it (SEEDS in session23_seeds.sh), each
  # exported to its own records file while the workdir exists: session23_<SET>.json, session23_<SET>_s<a>_<b>.json
  for W in /work/runs/s23_${SET}_s*; do
    [ -d "$W" ] || continue
    PART=${W##*/s23_${SET}_}; [ "$PART" = s5_9 ] && NEW=docs/results/records/session23_$SET.json \
      || NEW=docs/results/records/session23_${SET}_$PART.json
    python -m experiments.compare --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot \
      --against c12 --export $NEW > /dev/null
  done
  RUNS=(--run lth=$OLD:lth --run magnitude=$OLD:magnitude --run c12=$OLD:c12)
  for NEW in docs/results/records/session23_$SET.json docs/results/records/session23_${SET}_s*.json; do
    [ -f "$NEW" ] && RUNS+=(--run lth=$NEW:lth --run magnitude=$NEW:magnitude --run c12=$NEW:c12)
  done
  python -m experiments.compare "${RUNS[@]}" --against c12 --bar lth,magnitude \
    --out docs/results/heldout_${SET}_e1_session23.md > /dev/null
  python -m experiments.compare "${RUNS[@]}" --against c12 --bar lth,magnitude --confidence 0.975 \
    --out docs/results/heldout_${SET}_e1_session23_975.md > /dev/null
  for F in docs/results/heldout_${SET}_e1_session23.md docs/results/heldout_${SET}_e1_session23_975.md; do
    echo "$SET $F: $(grep '^Cells met' $F)"
  done
done
