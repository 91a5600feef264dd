#!/usr/bin/env bash
# Session 31: C17, the refined training distils the dense model (session31_preregistration.md), on a development set.
# usage: session31_c17.sh SET run      dense + C17 (--config.ballot.distill=1), resumable workdirs
#                                      /work/runs/s31_c17_<SET>_{80,95}, one per sparsity, side by side
#        session31_c17.sh SET check    the reproduction check: each workdir's dense records equal the comparison's
#                                      (prints no C17 figure)
#        session31_c17.sh SET report   records docs/results/records/session31_c17_<SET>.json and every candidate in
#                                      session31_c17_<SET>_candidates.json
# SET: cifar10 | bignose | wavy | blond | digits_lt10 (held-out sets need AFTER_DECISION=1). CelebA sets run seeds 0-9
# unless SEEDS (e.g. SEEDS=0,1,2,3,4) names others.
# VARIANT=c18 (session31_c18_preregistration.md): the μ > 0 candidates distil the μ = 0 ticket on its advantaged groups
# only (--config.ballot.distill_teacher=ticket --config.ballot.distill_groups=above_mean); names s31_c18_*, session31_c18_*.
# VARIANT=c19 (session32_preregistration.md): the μ > 0 candidates' adversary term reaches only the μ = 0 ticket's groups
# below the mean (--config.ballot.adversary_reach=below_mean); names s31_c19_*, session31_c19_*.
# Session 33's ablations of the default C16 (results A.3; nothing is decided by them), names s33_<VARIANT>_*,
# session33_<VARIANT>_*: VARIANT=abl_rewind (iterative pruning with rewinding and |w| only, LTH's mode),
# abl_finetune (one shot + fine-tuning with the vote only), abl_ft_magnitude (one shot + fine-tuning with |w|: no vote
# anywhere), abl_ft_1point (one shot + fine-tuning, the vote from a single point, vote_points=1).
# VARIANT=c20 (session33_preregistration.md): abl_rewind's flags, run on C20's decision sets; names s33_c20_*.
# VARIANT=c21 (session39_preregistration.md): abl_rewind's flags, the rewinding-mode runs C21 switches to on its
# decision sets; names s39_c21_*, session39_c21_*.
set -e
VARIANT=${VARIANT:-c17}
S=31
FT="--config.ballot.pruning=one_shot --config.ballot.rewind=false"
RW="--config.ballot.pruning=iterative --config.ballot.rewind=true --config.ballot.selection=magnitude"
case $VARIANT in
  c17) FLAGS="--config.ballot.distill=1";;
  c18) FLAGS="--config.ballot.distill=1 --config.ballot.distill_teacher=ticket --config.ballot.distill_groups=above_mean";;
  c19) FLAGS="--config.ballot.adversary_reach=below_mean";;
  c21) S=39; FLAGS="$RW";;
  abl_rewind|c20) S=33; FLAGS="$RW";;
  abl_finetune) S=33; FLAGS="$FT";;
  abl_ft_magnitude) S=33; FLAGS="$FT --config.ballot.selection=magnitude";;
  abl_ft_1point) S=33; FLAGS="$FT --config.ballot.vote_points=1";;
  *) echo "unknown VARIANT $VARIANT (c17 | c18 | c19 | c20 | c21 | abl_rewind | abl_finetune | abl_ft_magnitude | abl_ft_1point)" >&2; exit 2;;
esac
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
SET=$1; check_set "$SET"
BASE=$(set_command "$SET")
case $SET in blond|wavy|bignose|young|smiling|attractive|male) BASE=${BASE/--config.seeds=0,1,2,3,4/--config.seeds=0,1,2,3,4,5,6,7,8,9};; esac
[ -z "$SEEDS" ] || BASE="$(echo "$BASE" | sed -E "s/--config.seeds=[0-9,]+/--config.seeds=$SEEDS/")"  # e.g. SEEDS=0,1,2,3,4
R=docs/results/records
case $2 in
  run)
    for SP in 80 95; do
      ( echo "== $SET 0.$SP $(git rev-parse --short HEAD) $(date -u +%T)"
        python -m ${BASE/--config.sparsities=0.8,0.95/--config.sparsities=0.$SP} --workdir /work/runs/s${S}_${VARIANT}_${SET}_$SP \
          --config.methods=dense,ballot $FLAGS 2>&1 | grep "\[experiments\]" | tail -2
        echo "== done $(date -u +%T)" ) > /work/runs/s${S}_${VARIANT}_${SET}_$SP.log 2>&1 &
    done
    wait;;
  check)
    python3 - "$SET" "$VARIANT" "$S" <<'PY'
import glob, json, sys
name, variant, session = sys.argv[1:4]
files = {"blond": glob.glob("docs/results/records/session25_blond*.json"),
         "wavy": glob.glob("docs/results/records/session25_wavy*.json"),
         "bignose": ["docs/results/records/session29_Big_Nose.json"],
         "cifar10": ["docs/results/records/session31_cifar10_dense.json"],  # the dense of s29_dev_cifar10_{80,95}
         "digits_lt10": ["docs/results/records/session31_digits_lt10.json"]}[name]
kept = {r["seed"]: r["test"] for f in files for r in json.load(open(f))["records"] if r["method"] == "dense"}
bad = total = 0
for f in glob.glob(f"/work/runs/s{session}_{variant}_{name}_*/results.json"):
    for r in json.load(open(f))["records"]:
        if r["method"] == "dense":
            total += 1
            if kept.get(r["seed"]) != r["test"]:
                bad += 1
                print(f"{f}: seed {r['seed']}: the dense record differs from the comparison's")
print(f"{name}: {total - bad} of {total} dense records equal the comparison's ({len(kept)} kept)"
      + ("" if not bad else ": VOID"))
PY
    ;;
  report)
    RUNS=()
    for W in /work/runs/s${S}_${VARIANT}_${SET}_*/; do RUNS+=(--run $VARIANT=${W%/}:ballot --run dense=${W%/}:dense); done
    python -m experiments.compare "${RUNS[@]}" --export $R/session${S}_${VARIANT}_$SET.json > /dev/null
    python3 docs/results/scripts/session29_export_candidates.py $R/session${S}_${VARIANT}_${SET}_candidates.json \
      "/work/runs/s${S}_${VARIANT}_${SET}_*";;
  *) echo "usage: session31_c17.sh SET run | check | report" >&2; exit 2;;
esac
