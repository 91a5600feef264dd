#!/usr/bin/env bash
# Session 29: CIFAR-10's development records re-created on this machine (dense, LTH, Magnitude Pruning, C12; seeds 0-4;
# 80% and 95%), because session 22's are not reproduced here (results A.2zm) and C16's decision needs them.
# Two workdirs side by side, one per sparsity: /work/runs/s29_dev_cifar10_{80,95} (resumable).
# usage: session29_cifar10_records.sh run | report
# C12's rule pinned (session 30): the default since session 30 is C16's, and these runs are C12's.
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
BASE=$(set_command cifar10)
case $1 in
  run)
    for SP in 80 95; do
      ( echo "== cifar10 0.$SP $(git rev-parse --short HEAD) $(date -u +%T)"
        python -m ${BASE/--config.sparsities=0.8,0.95/--config.sparsities=0.$SP} --workdir /work/runs/s29_dev_cifar10_$SP \
          --config.methods=dense,lth,magnitude,ballot --config.ballot.mu_rule=strongest 2>&1 | grep "\[experiments\]" | tail -2
        echo "== done $(date -u +%T)" ) > /work/runs/s29_dev_cifar10_$SP.log 2>&1 &
    done
    wait;;
  report)
    R=docs/results/records/session29_cifar10.json
    python -m experiments.compare $(for SP in 80 95; do W=/work/runs/s29_dev_cifar10_$SP; \
      echo --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot; done) --export $R > /dev/null
    python3 docs/results/scripts/session29_export_candidates.py docs/results/records/session29_cifar10_candidates_all.json \
      "/work/runs/s29_dev_cifar10_*";;
  *) echo "usage: session29_cifar10_records.sh run | report" >&2; exit 2;;
esac
