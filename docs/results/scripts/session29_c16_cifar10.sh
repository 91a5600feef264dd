#!/usr/bin/env bash
# Session 29, C16 (session29_preregistration.md): C12 re-run on the five CIFAR-10 development runs whose μ C16 changes
# (seeds 0, 2 at 80%; seeds 1, 2, 3 at 95%), so that every candidate's test metrics are in a workdir; session 22's
# records of the same runs must be reproduced (checked by session29_decide.py). Workdirs /work/runs/s29_cifar10_{80,95}.
# C12's rule pinned (session 30): the default since session 30 is C16's, and these runs are C12's.
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
BASE=$(set_command cifar10)
run() {  # SEEDS SPARSITY WORKDIR
  echo "== cifar10 seeds $1 sparsity $2 $(git rev-parse --short HEAD) $(date -u +%T)"
  python -m ${BASE/--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95/--config.seeds=$1 --config.sparsities=$2} \
    --workdir $3 --config.methods=dense,ballot --config.ballot.mu_rule=strongest 2>&1 | grep "\[experiments\]" | tail -2
  echo "== done $(date -u +%T)"
}
run 0,2 0.8 /work/runs/s29_cifar10_80 > /work/runs/s29_cifar10_80.log 2>&1 &
run 1,2,3 0.95 /work/runs/s29_cifar10_95 > /work/runs/s29_cifar10_95.log 2>&1 &
wait
