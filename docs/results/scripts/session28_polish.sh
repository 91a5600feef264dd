#!/usr/bin/env bash
# Session 28, C15 (session28_preregistration.md): the default with refine="polish" on the development CelebA targets at
# seeds 0-9 with T2, beside session 25's LTH, Magnitude Pruning and C12 records (C15 failed there, so its second gate,
# CIFAR-10 and digits-LT10, was not run). Workdir /work/runs/s28_<SET>_polish (resumable: finished work is skipped).
# usage: session28_polish.sh run SET ...      (from anywhere; SET is blond or wavy)
#        session28_polish.sh report SET ...   (exports docs/results/records/session28_<SET>_polish.json (label c15),
#                                              checks C15's mode and μ = 0 candidate equal C12's on every run, writes
#                                              docs/results/dev_<SET>_c15_polish_session28.md)
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
MODE=$1; shift
for SET in "$@"; do
  case $SET in blond|wavy) ;; *) echo "$SET is not a development CelebA target (blond, wavy)" >&2; exit 2;; esac
  OLD=(docs/results/records/session25_${SET}.json docs/results/records/session25_${SET}_s*.json)
  W=/work/runs/s28_${SET}_polish
  R=docs/results/records/session28_${SET}_polish.json
  case $MODE in
    run)
      CMD=$(set_command "$SET")
      CMD=${CMD/--config.seeds=0,1,2,3,4/--config.seeds=${SEEDS:-0,1,2,3,4,5,6,7,8,9}}
      echo "== $SET $(git rev-parse --short HEAD) $(date -u +%T)"
      python -m $CMD --workdir $W --config.methods=dense,ballot --config.ballot.refine=polish 2>&1 \
        | grep "\[experiments\]" | tail -3
      echo "== $SET done $(date -u +%T)";;
    report)
      python -m experiments.compare --run dense=$W:dense --run c15=$W:ballot --export $R > /dev/null
      python - "$R" "${OLD[@]}" <<'PY'
import glob, json, sys
def load(paths, method):
    out = {}
    for p in paths:
        for r in (json.load(open(p))["records"] if glob.glob(p) else []):
            if r["method"] == method:
                out[(r["seed"], r["target_sparsity"])] = r
    return out
new, old = load(sys.argv[1:2], "c15"), load(sys.argv[2:], "c12")
assert sorted(new) == sorted(old), (sorted(new), sorted(old))
bad = [k for k in new if (new[k]["mode"], new[k]["search"]["0"]) != (old[k]["mode"], old[k]["search"]["0"])]
print(f"{len(new)} runs: mode and mu = 0 candidate " + ("identical to C12's" if not bad else f"DIFFER at {bad}"))
sys.exit(1 if bad else 0)
PY
      RUNS=()
      for F in "${OLD[@]}"; do [ -f "$F" ] && RUNS+=(--run lth=$F:lth --run magnitude=$F:magnitude --run c12=$F:c12); done
      python -m experiments.compare "${RUNS[@]}" --run c15=$R:c15 --against c15 --bar lth,magnitude \
        --out docs/results/dev_${SET}_c15_polish_session28.md > /dev/null
      grep '^Cells met' docs/results/dev_${SET}_c15_polish_session28.md;;
    *) echo "usage: session28_polish.sh run|report SET ..." >&2; exit 2;;
  esac
done
