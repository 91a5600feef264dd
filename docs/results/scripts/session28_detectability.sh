#!/usr/bin/env bash
# Session 28: the bar's reach on the held-out sets as they are read now (nothing trained, nothing chosen): the
# sampling floor and the fair oracle's rates (docs/method.md §3.1, experiments.detectability) for LTH and Magnitude
# Pruning at seeds 0-9, beside C12's mean CWV, from the records the held-out bar of results A.2zh reads:
# the CelebA sets with the training T2 (records/session25_<SET>_s*.json), synthetic and CIFAR-10-LT from E1
# (records/session21_<SET>.json seeds 0-4 + records/session23_<SET>.json seeds 5-9; their training is unchanged by T2).
# The test split's group counts come from a config.json of the same data settings: a 40-step dense run of the set's
# command (/work/runs/cfg_<SET>, seconds). Writes docs/results/detectability_heldout_<SET>_T_session28.md.
# usage: session28_detectability.sh [SET ...]   (from the repository root; default: the six held-out sets)
set -e
source .venv/bin/activate
source docs/results/scripts/set_command.sh
R=docs/results/records
for SET in ${*:-young attractive male smiling synthetic cifar10_lt10}; do
  case $SET in
    young|attractive|male|smiling) FILES=($R/session25_${SET}_s*.json);;
    synthetic|cifar10_lt10) FILES=($R/session21_$SET.json $R/session23_$SET.json);;
    *) echo "not a held-out set: $SET" >&2; exit 2;;
  esac
  CFG=/work/runs/cfg_$SET
  if [ ! -f $CFG/config.json ]; then
    CMD=$(set_command $SET)
    python -m $CMD --workdir $CFG --config.seeds=0 --config.methods=dense --config.train.steps=40 \
      --config.sparsities=0.8 > /dev/null 2>&1
  fi
  RUNS=()
  for F in "${FILES[@]}"; do RUNS+=(--run lth=$F:lth --run magnitude=$F:magnitude --run c12=$F:c12); done
  OUT=docs/results/detectability_heldout_${SET}_T_session28.md
  python -m experiments.detectability "${RUNS[@]}" --method c12 --data-from $CFG --draws 1000 --out $OUT > /dev/null
  echo "$SET: $(grep -c '^| 0\.' $OUT) rows -> $OUT"
done
