"""Session 27: does validation underestimate what the chosen μ costs? Read from the development targets' exported
records (docs/results/records/session25_{blond,wavy}*.json; nothing trained, nothing chosen). In C12's rewinding mode
the μ = 0 candidate is Standard LTH's ticket (identical records, docs/method.md §5.6), so for every run in that mode
the chosen μ's validation drop is search[chosen] − search[0] and its test drop is C12's test accuracy − LTH's. Prints,
per target and sparsity and pooled, the mean drops and the mean of (test drop − validation drop) with a 95% percentile
bootstrap CI over runs (ballot_jax.stats; runs of one target's two sparsities share their seed's dense net, so the
pooled interval treats correlated runs as independent: read it as descriptive).
    PYTHONPATH=. python docs/results/scripts/session27_val_vs_test_drop.py
"""
import glob
import json

import numpy as np

from ballot_jax import stats

DEV_TARGETS = ("blond", "wavy")


def runs(target):
    out = []
    for path in sorted(glob.glob(f"docs/results/records/session25_{target}.json")
                       + glob.glob(f"docs/results/records/session25_{target}_s*.json")):
        with open(path) as f:
            records = json.load(f)["records"]
        by = {(r["method"], r["seed"], r["sparsity"]): r for r in records}
        for (method, seed, sparsity), r in sorted(by.items()):
            if method != "c12" or r["mode"] != "iterative_rewind":
                continue
            chosen = r["run_dir"].rsplit("mu_", 1)[1]
            lth = by[("lth", seed, sparsity)]["test"]["accuracy"]
            out.append({"target": target, "seed": seed, "sparsity": sparsity, "mu": chosen,
                        "val_drop": 100 * (r["search"][chosen]["accuracy"] - r["search"]["0"]["accuracy"]),
                        "test_drop": 100 * (r["test"]["accuracy"] - lth)})
    return out


def line(label, rows):
    if len(rows) < 2:
        return f"| {label} | {len(rows)} | | | |"
    test = [r["test_drop"] for r in rows]
    val = [r["val_drop"] for r in rows]
    c = stats.paired_comparison(test, val, higher_is_better=True)
    return (f"| {label} | {len(rows)} | {np.mean(val):+.2f} | {np.mean(test):+.2f} | "
            f"{c.mean_difference:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}] |")


def main():
    every = [r for t in DEV_TARGETS for r in runs(t)]
    lines = ["| Runs (rewinding mode) | n | validation drop (pp) | test drop vs LTH (pp) | test − validation [95% CI] |",
             "|---|---|---|---|---|"]
    for target in DEV_TARGETS:
        for sparsity in sorted({r["sparsity"] for r in every}):
            lines.append(line(f"{target} {sparsity:g}", [r for r in every if r["target"] == target
                                                         and r["sparsity"] == sparsity]))
        lines.append(line(f"{target}, both sparsities", [r for r in every if r["target"] == target]))
    lines.append(line("both targets", every))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
