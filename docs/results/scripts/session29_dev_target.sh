#!/usr/bin/env bash
# Session 29: a third CelebA development target (session29_dev_target.md: the rule, written before any run).
# usage: session29_dev_target.sh scout            dense nets of the six candidates, seeds 0-2; prints each one's mean
#                                                 validation accuracy and CWV and the rule's choice
#        session29_dev_target.sh run TARGET       dense, LTH, Magnitude Pruning and Ballot at seeds 0-9, 80%/95%
#                                                 (SEEDS=... overrides; WORKDIR_SUFFIX separates parallel halves)
#        session29_dev_target.sh report TARGET    exports docs/results/records/session29_<TARGET>.json and writes
#                                                 docs/results/dev_<TARGET>_session29.md (C12 against LTH and Magnitude)
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
CANDIDATES="Big_Nose Bags_Under_Eyes Arched_Eyebrows High_Cheekbones Black_Hair Mouth_Slightly_Open"
BASE=$(set_command blond); BASE=${BASE% --config.data.target=Blond_Hair}
case $1 in
  scout)
    for T in $CANDIDATES; do
      python -m ${BASE/--config.seeds=0,1,2,3,4/--config.seeds=0,1,2} --config.sparsities=0.8 \
        --config.data.target=$T --config.methods=dense --workdir /work/runs/s29_scout_$T 2>&1 | grep "done in" || exit 1
    done
    python - $CANDIDATES <<'PY'
import json, sys
rows = []
for t in sys.argv[1:]:
    recs = [r for r in json.load(open(f"/work/runs/s29_scout_{t}/results.json"))["records"] if r["method"] == "dense"]
    acc = sum(r["val"]["accuracy"] for r in recs) / len(recs)
    cwv = sum(r["val"]["cwv"] for r in recs) / len(recs)
    rows.append((t, len(recs), acc, cwv))
    print(f"{t:20s} seeds {len(recs)}  validation accuracy {acc:.4f}  validation CWV {cwv:.5f}")
ok = [r for r in rows if 0.78 <= r[2] <= 0.90]
best = max(ok, key=lambda r: (r[3], -rows.index(r))) if ok else None
print("chosen:", best[0] if best else "none (no candidate in the accuracy band)")
PY
    ;;
  run)
    T=$2; W=/work/runs/s29_dev_${T}${WORKDIR_SUFFIX}
    CMD="${BASE/--config.seeds=0,1,2,3,4/--config.seeds=${SEEDS:-0,1,2,3,4,5,6,7,8,9}} --config.data.target=$T"
    echo "== $T $(git rev-parse --short HEAD) $(date -u +%T) $W"
    python -m $CMD --workdir $W --config.methods=dense,lth,magnitude,ballot 2>&1 | grep "\[experiments\]" | tail -3
    echo "== $T done $(date -u +%T)";;
  report)
    T=$2; R=docs/results/records/session29_${T}.json; RUNS=()
    for W in /work/runs/s29_dev_${T}*; do
      RUNS+=(--run dense=$W:dense --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot)
    done
    python -m experiments.compare "${RUNS[@]}" --export $R > /dev/null
    python -m experiments.compare --run lth=$R:lth --run magnitude=$R:magnitude --run c12=$R:c12 --against c12 \
      --bar lth,magnitude --out docs/results/dev_${T}_session29.md > /dev/null
    grep '^Cells met' docs/results/dev_${T}_session29.md;;
  *) echo "usage: session29_dev_target.sh scout | run TARGET | report TARGET" >&2; exit 2;;
esac
