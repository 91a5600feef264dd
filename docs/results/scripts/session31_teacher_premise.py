"""Session 31: C17's premise, measured after its failure (nothing trained): is the dense model, the teacher C17 distils,
more accurate or fairer than LTH's ticket on the development sets? Paired per seed, dense − LTH test accuracy
(points) and CWV, from the development records, with the 95% percentile bootstrap CI of the mean over seeds
(``ballot_jax.stats.bootstrap_ci``, as every paired comparison of the project).

    PYTHONPATH=. python3 docs/results/scripts/session31_teacher_premise.py
"""
import glob
import json
import statistics

from ballot_jax.stats import bootstrap_ci

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
        lo, hi = (100 * v for v in bootstrap_ci(acc))
        clo, chi = bootstrap_ci(cwv)
        print(f"{name} {sparsity:.0%}: dense - LTH accuracy {100 * statistics.mean(acc):+.2f} [{lo:+.2f}, {hi:+.2f}] "
              f"points (dense higher in {sum(d > 0 for d in acc)}/{len(acc)}), CWV {statistics.mean(cwv):+.5f} "
              f"[{clo:+.5f}, {chi:+.5f}] (dense less fair in {sum(d > 0 for d in cwv)}/{len(cwv)})")
