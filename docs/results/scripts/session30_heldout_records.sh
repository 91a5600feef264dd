#!/usr/bin/env bash
# Session 30, after C16's decision (c88dc47, PASS): a held-out set's records re-created on this machine, for the sets
# whose kept records (session 21's and 23's, E1) do not reproduce here (results A.2zn: the re-runs of their changed
# runs differ, and for synthetic so does session 23's own commit a790c66 re-run here). Dense, LTH, Magnitude Pruning
# and C12 (mu_rule='strongest', the default until session 30; C16 is read from its candidates by session30_heldout.py)
# at seeds 0-9, 80% and 95%, one workdir per sparsity, /work/runs/s30_<SET>_<80|95> (resumable; both at once).
# Nothing is chosen on these sets. Synthetic ran 19:20-19:35 UTC by this script's first form (one workdir,
# /work/runs/s30_synthetic, both sparsities; same command otherwise).
# usage: session30_heldout_records.sh SET run | report      SET: synthetic | cifar10_lt10
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
SET=$1
case $SET in synthetic|cifar10_lt10) ;; *) echo "usage: session30_heldout_records.sh synthetic|cifar10_lt10 run|report" >&2; exit 2;; esac
AFTER_DECISION=1 check_set "$SET" || exit 2
WORKDIRS=$(ls -d /work/runs/s30_${SET} /work/runs/s30_${SET}_80 /work/runs/s30_${SET}_95 2>/dev/null || true)
case $2 in
  run)
    BASE=$(set_command "$SET")
    for SP in 80 95; do
      ( echo "== $SET 0.$SP $(git rev-parse --short HEAD) $(date -u +%T)"
        python -m ${BASE/--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95/--config.seeds=0,1,2,3,4,5,6,7,8,9 --config.sparsities=0.$SP} \
          --workdir /work/runs/s30_${SET}_$SP --config.methods=dense,lth,magnitude,ballot --config.ballot.mu_rule=strongest \
          2>&1 | grep "\[experiments\]" | tail -2
        echo "== done $(date -u +%T)" ) > /work/runs/s30_${SET}_$SP.log 2>&1 &
    done
    wait;;
  report)
    python -m experiments.compare $(for W in $WORKDIRS; do echo --run lth=$W:lth --run magnitude=$W:magnitude \
      --run c12=$W:ballot; done) --export docs/results/records/session30_$SET.json > /dev/null
    python3 docs/results/scripts/session29_export_candidates.py \
      docs/results/records/session30_${SET}_candidates_all.json $WORKDIRS;;
  *) echo "usage: session30_heldout_records.sh synthetic|cifar10_lt10 run|report" >&2; exit 2;;
esac
