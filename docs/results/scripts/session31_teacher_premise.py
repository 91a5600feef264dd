"""Session 31: C17's premise, measured after its failure (nothing trained): is the dense model, the teacher C17 distils,
more accurate or fairer than LTH's ticket on the development sets? Paired per seed, dense − LTH test accuracy
(points) and CWV, from the development records.

    python3 docs/results/scripts/session31_teacher_premise.py
"""
import glob
import json
import statistics

R = "docs/results/records"
SETS = {"cifar10": [f"{R}/session29_cifar10.json", f"{R}/session31_cifar10_dense.json"],
        "big_nose": [f"{R}/session29_Big_Nose.json"], "wavy": sorted(glob.glob(f"{R}/session25_wavy*.json")),
        "blond": sorted(glob.glob(f"{R}/session25_blond*.json")), "digits_lt10": [f"{R}/session31_digits_lt10.json"]}

for name, files in SETS.items():
    recs = [r for f in files for r in json.load(open(f))["records"]]
    dense = {r["seed"]: r for r in recs if r["method"] == "dense"}
    for sparsity in (0.8, 0.95):
        lth = [r for r in recs if r["method"] == "lth" and r["target_sparsity"] == sparsity]
        acc = [dense[r["seed"]]["test"]["accuracy"] - r["test"]["accuracy"] for r in lth]
        cwv = [dense[r["seed"]]["test"]["cwv"] - r["test"]["cwv"] for r in lth]
        print(f"{name} {sparsity:.0%}: dense - LTH accuracy {100 * statistics.mean(acc):+.2f} points (dense higher in "
              f"{sum(d > 0 for d in acc)}/{len(acc)}), CWV {statistics.mean(cwv):+.5f} (dense less fair in "
              f"{sum(d > 0 for d in cwv)}/{len(cwv)})")
