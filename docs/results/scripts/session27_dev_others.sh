#!/usr/bin/env bash
# Session 27: SafeCompress, FairScratch and the authors' Ballot (ballot_authors) on the development CelebA targets at
# seeds 0-9 with the CelebA training T2 (A.2zh), beside session 25's LTH, Magnitude Pruning and C12 records. Nothing is
# chosen from these runs. Workdir /work/runs/s27_<SET>_others (resumable: finished work is skipped).
# usage: session27_dev_others.sh run SET ...      (from anywhere; SET is blond or wavy)
#        session27_dev_others.sh report SET ...   (exports docs/results/records/session27_<SET>_others.json, checks its
#                                                  dense records equal session 25's, writes
#                                                  docs/results/dev_<SET>_all_methods_T_session27.md and
#                                                  docs/results/dev_<SET>_c12_vs_authors_T_session27.md)
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
MODE=$1; shift
for SET in "$@"; do
  case $SET in blond|wavy) ;; *) echo "$SET is not a development CelebA target (blond, wavy)" >&2; exit 2;; esac
  W=/work/runs/s27_${SET}_others
  R=docs/results/records/session27_${SET}_others.json
  case $MODE in
    run)
      CMD=$(set_command "$SET")
      CMD=${CMD/--config.seeds=0,1,2,3,4/--config.seeds=0,1,2,3,4,5,6,7,8,9}
      echo "== $SET $(git rev-parse --short HEAD) $(date -u +%T)"
      python -m $CMD --workdir $W --config.methods=dense,safecompress,fairscratch,ballot_authors 2>&1 \
        | grep "\[experiments\]" | tail -3
      echo "== $SET done $(date -u +%T)";;
    report)
      python -m experiments.compare --run dense=$W:dense --run safecompress=$W:safecompress \
        --run fairscratch=$W:fairscratch --run ballot_authors=$W:ballot_authors --export $R > /dev/null
      OLD=(docs/results/records/session25_${SET}.json docs/results/records/session25_${SET}_s*.json)
      python - "$R" "${OLD[@]}" <<'PY'
import json, sys
def dense(paths):
    out = {}
    for p in paths:
        try:
            recs = json.load(open(p))["records"]
        except FileNotFoundError:
            continue
        for r in recs:
            if r["method"] == "dense":
                out[r["seed"]] = (r["val"], r["test"])
    return out
new, old = dense(sys.argv[1:2]), dense(sys.argv[2:])
assert sorted(new) == sorted(old), (sorted(new), sorted(old))
diff = [s for s in new if new[s] != old[s]]
print(f"dense records of seeds {sorted(new)}: " + ("identical to session 25's" if not diff else f"DIFFER at seeds {diff}"))
sys.exit(1 if diff else 0)
PY
      RUNS=()
      for F in "${OLD[@]}"; do
        [ -f "$F" ] && RUNS+=(--run lth=$F:lth --run magnitude=$F:magnitude --run c12=$F:c12)
      done
      python -m experiments.compare "${RUNS[@]}" --run safecompress=$R:safecompress --run fairscratch=$R:fairscratch \
        --run ballot_authors=$R:ballot_authors --against c12,ballot_authors --bar lth,magnitude \
        --out docs/results/dev_${SET}_all_methods_T_session27.md > /dev/null
      RUNS12=()
      for F in "${OLD[@]}"; do [ -f "$F" ] && RUNS12+=(--run c12=$F:c12); done
      python -m experiments.compare "${RUNS12[@]}" --run ballot_authors=$R:ballot_authors --against c12 \
        --out docs/results/dev_${SET}_c12_vs_authors_T_session27.md > /dev/null
      echo "$SET: $(grep '^Cells met' docs/results/dev_${SET}_all_methods_T_session27.md)";;
    *) echo "usage: $0 run|report SET ..." >&2; exit 2;;
  esac
done
