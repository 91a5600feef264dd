#!/usr/bin/env bash
# Session 30, after C16's decision (c88dc47, PASS): the held-out synthetic set's records re-created on this machine,
# because session 21's and 23's (E1) do not reproduce here (results A.2zn: the re-run of their changed runs differs,
# and so does session 23's own commit a790c66 re-run here). Dense, LTH, Magnitude Pruning and C12 (mu_rule='strongest',
# the default until session 30; C16 is read from its candidates by session30_heldout.py) at seeds 0-9, 80% and 95%, in
# /work/runs/s30_synthetic (resumable). Nothing is chosen on this set.
# usage: session30_synthetic_records.sh run | report
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
W=/work/runs/s30_synthetic
case $1 in
  run)
    AFTER_DECISION=1 check_set synthetic || exit 2
    BASE=$(set_command synthetic)
    echo "== synthetic $(git rev-parse --short HEAD) $(date -u +%T)"
    python -m ${BASE/--config.seeds=0,1,2,3,4/--config.seeds=0,1,2,3,4,5,6,7,8,9} --workdir $W \
      --config.methods=dense,lth,magnitude,ballot --config.ballot.mu_rule=strongest 2>&1 | grep "\[experiments\]" | tail -2
    echo "== done $(date -u +%T)";;
  report)
    python -m experiments.compare --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot \
      --export docs/results/records/session30_synthetic.json > /dev/null
    python3 docs/results/scripts/session29_export_candidates.py \
      docs/results/records/session30_synthetic_candidates_all.json "$W";;
  *) echo "usage: session30_synthetic_records.sh run | report" >&2; exit 2;;
esac
