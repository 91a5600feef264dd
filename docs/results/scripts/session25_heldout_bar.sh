#!/usr/bin/env bash
# Session 25, Stage B, rule 2 of session25_preregistration.md: the held-out bar over all six held-out sets, read only
# once the four CelebA sets have seeds 0-9 with T2 (docs/results/heldout_<SET>_T_session25.md, written by
# session25_report.sh); synthetic and CIFAR-10-LT are E1's 10-seed reports (heldout_<SET>_e1_session23.md, their
# training is unchanged by T). Prints each set's "Cells met" line and the total.
# usage: session25_heldout_bar.sh   (from the repository root)
set -e
TOTAL=0
for F in docs/results/heldout_{attractive,male,smiling,young}_T_session25.md \
         docs/results/heldout_{synthetic,cifar10_lt10}_e1_session23.md; do
  [ -f "$F" ] || { echo "missing $F: run session25_report.sh for its set first" >&2; exit 2; }
  LINE=$(grep '^Cells met' "$F")
  N=$(echo "$LINE" | sed -E 's/.* ([0-9]+) of 4\..*/\1/')
  echo "$F: $LINE"
  TOTAL=$((TOTAL + N))
done
echo "all six held-out sets at seeds 0-9: $TOTAL of 24 cells"
