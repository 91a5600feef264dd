#!/usr/bin/env bash
# Session 30, after C16's decision was committed (c88dc47, PASS): C12 re-run on the held-out runs whose μ C16 changes
# (read from the kept records' validation searches: session25_<SET>*.json for the CelebA targets, session21_/session23_
# for synthetic and CIFAR-10-LT), so that every candidate's test metrics are in a workdir. Each re-run must reproduce
# its kept record (checked by session30_heldout.py; a set that does not is void; Young changes none). Workdirs /work/runs/s30_ho_<SET>_<SP>.
# usage: session30_c16_heldout.sh run | export
# C12's rule pinned (session 30): the default since session 30 is C16's, and these runs are C12's.
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
run() {  # SET SEEDS SPARSITY
  AFTER_DECISION=1 check_set "$1" || exit 2
  local BASE; BASE=$(set_command "$1")
  echo "== $1 seeds $2 sparsity $3 $(git rev-parse --short HEAD) $(date -u +%T)"
  python -m ${BASE/--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95/--config.seeds=$2 --config.sparsities=$3} \
    --workdir /work/runs/s30_ho_$1_${3#0.} --config.methods=dense,ballot --config.ballot.mu_rule=strongest 2>&1 | grep "\[experiments\]" | tail -2
  echo "== done $(date -u +%T)"
}
case $1 in
  run)
    ( run attractive 2,4,8 0.8; run attractive 1 0.95; run male 4 0.8; run smiling 1 0.8 ) \
      > /work/runs/s30_ho_celeba.log 2>&1 &
    ( run synthetic 4,5 0.8; run synthetic 8 0.95; run cifar10_lt10 1,2,4 0.8; run cifar10_lt10 1 0.95 ) \
      > /work/runs/s30_ho_other.log 2>&1 &
    wait;;
  export)
    for SET in attractive male smiling synthetic cifar10_lt10; do
      python3 docs/results/scripts/session29_export_candidates.py \
        docs/results/records/session30_heldout_${SET}_candidates.json "/work/runs/s30_ho_${SET}_*"
    done;;
  *) echo "usage: session30_c16_heldout.sh run | export" >&2; exit 2;;
esac
