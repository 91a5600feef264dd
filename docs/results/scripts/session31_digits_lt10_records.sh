#!/usr/bin/env bash
# Session 31: do digits-LT10's development records (session 22, session22_dev_digits_lt10.json) reproduce on this
# machine? The records of sessions 21-23 on CIFAR-10, synthetic and CIFAR-10-LT did not (results A.2zn); digits-LT10,
# a development set of C16's decision, had not been checked. Dense, LTH, Magnitude Pruning and C12 (its rule pinned:
# the default since session 30 is C16's) re-run here, seeds 0-4, 80% and 95%, workdir /work/runs/s31_digits_lt10
# (resumable); `compare` prints, per method, how many runs equal the kept record's test metrics to the bit, and for
# C12's runs the kept and re-run mode, μ and validation search, and the μ C16's rule (the library's
# "strongest_prefix") takes from the re-run's search; `report` exports the re-run's records
# (docs/results/records/session31_digits_lt10.json) and every candidate (session31_digits_lt10_candidates.json).
# usage: session31_digits_lt10_records.sh run | compare | report
set -e
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
source docs/results/scripts/set_command.sh
W=/work/runs/s31_digits_lt10
case $1 in
  run)
    echo "== digits_lt10 $(git rev-parse --short HEAD) $(date -u +%T)"
    python -m $(set_command digits_lt10) --workdir $W --config.methods=dense,lth,magnitude,ballot \
      --config.ballot.mu_rule=strongest 2>&1 | grep "\[experiments\]" | tail -2
    echo "== done $(date -u +%T)";;
  compare)
    python3 - "$W" <<'PY'
import json, sys
kept = json.load(open("docs/results/records/session22_dev_digits_lt10.json"))["records"]
here = json.load(open(f"{sys.argv[1]}/results.json"))["records"]
key = lambda r: (r["seed"], r["target_sparsity"])
for method, ours in (("lth", "lth"), ("magnitude", "magnitude"), ("c12", "ballot")):
    old = {key(r): r for r in kept if r["method"] == method}
    new = {key(r): r for r in here if r["method"] == ours}
    same = [k for k in old if k in new and old[k]["test"] == new[k]["test"]]
    print(f"{method}: {len(same)} of {len(old)} runs equal to the kept record ({len(new)} re-run)")
    for k in sorted(set(old) - set(same)):
        if k in new:
            print(f"  seed {k[0]} {k[1]:.0%}: test accuracy kept {old[k]['test']['accuracy']:.4f}, here "
                  f"{new[k]['test']['accuracy']:.4f}; CWV kept {old[k]['test']['cwv']:.5f}, here {new[k]['test']['cwv']:.5f}")
from ballot_jax.methods.ballot import choose_within_epsilon
old = {key(r): r for r in kept if r["method"] == "c12"}
for k, r in sorted((key(r), r) for r in here if r["method"] == "ballot"):
    val = {float(mu): v for mu, v in r["search"].items()}
    c16 = choose_within_epsilon(val, val[0.0]["accuracy"], r["epsilon_effective"], "strongest_prefix")
    search = lambda rec: " ".join(f"{mu}:{v['accuracy']:.4f}" for mu, v in rec["search"].items())
    print(f"seed {k[0]} {k[1]:.0%}: mode kept {old[k]['mode']} here {r['mode']}; mu kept {old[k]['disparity_weight']:g} "
          f"here {r['disparity_weight']:g}, C16's {c16:g}; validation kept {search(old[k])} | here {search(r)}")
PY
    ;;
  report)
    R=docs/results/records
    python -m experiments.compare --run lth=$W:lth --run magnitude=$W:magnitude --run c12=$W:ballot --run dense=$W:dense \
      --export $R/session31_digits_lt10.json > /dev/null
    python3 docs/results/scripts/session29_export_candidates.py $R/session31_digits_lt10_candidates.json "$W";;
  *) echo "usage: session31_digits_lt10_records.sh run | compare | report" >&2; exit 2;;
esac
