#!/usr/bin/env bash
# Session 25, Stage A (docs/results/scripts/session25_preregistration.md): the dense net alone on the CelebA
# development targets at seeds 0-9 under each training candidate T0-T3, in /work/runs/s25_<SET>_<T> (resumable).
# usage: session25_dense_choice.sh [T ...]   (default: T0 T1 T2 T3); then session25_dense_decide.py
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
flags() {
  case $1 in
    T0) echo "--config.train.learning_rate=0.05 --config.train.schedule=cosine";;
    T1) echo "--config.train.learning_rate=0.02 --config.train.schedule=cosine";;
    T2) echo "--config.train.learning_rate=0.05 --config.train.schedule=warmup_cosine --config.train.warmup_steps=30";;
    T3) echo "--config.train.learning_rate=0.02 --config.train.schedule=warmup_cosine --config.train.warmup_steps=30";;
    *) echo "unknown candidate $1" >&2; return 2;;
  esac
}
for T in ${*:-T0 T1 T2 T3}; do
  F=$(flags "$T")
  for SET in blond wavy; do
    CMD=$(set_command "$SET")
    echo "== $T $SET $(git rev-parse --short HEAD) $(date -u +%T)"
    python -m ${CMD/--config.seeds=0,1,2,3,4/--config.seeds=0,1,2,3,4,5,6,7,8,9} $F --config.methods=dense \
      --workdir /work/runs/s25_${SET}_$T 2>&1 | { grep "\[experiments\].*test acc" || true; } | tail -1
  done
done
