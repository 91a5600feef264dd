#!/usr/bin/env bash
# Session 23, E1 (session23_preregistration.md): a held-out set read on seeds 0-9 -- seeds 0-4 from the kept records
# (records/session21_<SET>.json, label = Male: session22_male.json; labels lth, magnitude, c12), seeds 5-9 from
# /work/runs/s23_<SET>_s5_9 -- at the 95% and at the second look's 97.5%. Writes
# docs/results/records/session23_<SET>.json (seeds 5-9, labels lth, magnitude, c12) and
# docs/results/heldout_<SET>_e1_session23[_975].md.
# usage: session23_report.sh SET ...   (from the repository root)
set -e
source /work/main/.venv/bin/activate
for SET in "$@"; do
  OLD=docs/results/records/session21_$SET.json; [ "$SET" = male ] && OLD=docs/results/records/session22_male.json
  NEW=docs/results/records/session23_$SET.json
  W=/work/runs/s23_${SET}_s5_9
  if [ -d "$W" ]; then  # (re-)export seeds 5-9 from the workdir while it exists
    python -m experiments.compare --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot \
      --against c12 --export $NEW > /dev/null
  fi
  RUNS=(--run lth=$OLD:lth --run lth=$NEW:lth --run magnitude=$OLD:magnitude --run magnitude=$NEW:magnitude
        --run c12=$OLD:c12 --run c12=$NEW:c12)
  python -m experiments.compare "${RUNS[@]}" --against c12 --bar lth,magnitude \
    --out docs/results/heldout_${SET}_e1_session23.md > /dev/null
  python -m experiments.compare "${RUNS[@]}" --against c12 --bar lth,magnitude --confidence 0.975 \
    --out docs/results/heldout_${SET}_e1_session23_975.md > /dev/null
  for F in docs/results/heldout_${SET}_e1_session23.md docs/results/heldout_${SET}_e1_session23_975.md; do
    echo "$SET $F: $(grep '^Cells met' $F)"
  done
done
