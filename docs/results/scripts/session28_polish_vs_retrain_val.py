"""Session 28: C15's polished μ candidates against C12's retrained ones at the same μ, on validation (the only metrics
both records keep for every candidate: `search`, each candidate's validation accuracy and CWV in the chosen mode; the
mode and the μ = 0 candidate are the same run in both, checked by session28_polish.sh report). Paired over the runs of
each development target (seeds 0-9 × 80%/95%; runs of one seed share its dense net, so read the interval as
descriptive), mean difference polish − retrain with a 95% percentile bootstrap CI (ballot_jax.stats).
    PYTHONPATH=. python docs/results/scripts/session28_polish_vs_retrain_val.py
"""
import glob
import json

from ballot_jax import stats

R = "docs/results/records"


def searches(paths, method):
    out = {}
    for p in paths:
        for r in json.load(open(p))["records"]:
            if r["method"] == method:
                out[(r["seed"], r["target_sparsity"])] = r["search"]
    return out


def main():
    print("| Target | μ | runs | validation accuracy, polish − retrain (pp) | validation CWV, polish − retrain |")
    print("|---|---|---|---|---|")
    for target in ("blond", "wavy"):
        new = searches([f"{R}/session28_{target}_polish.json"], "c15")
        old = searches(sorted(glob.glob(f"{R}/session25_{target}*.json")), "c12")
        keys = sorted(new)
        for mu in ("0.3", "1", "3"):
            acc = stats.paired_comparison([100 * new[k][mu]["accuracy"] for k in keys],
                                          [100 * old[k][mu]["accuracy"] for k in keys], higher_is_better=True)
            cwv = stats.paired_comparison([new[k][mu]["cwv"] for k in keys],
                                          [old[k][mu]["cwv"] for k in keys], higher_is_better=False)
            print(f"| {target} | {mu} | {len(keys)} | {acc.mean_difference:+.2f} [{acc.ci_low:+.2f}, {acc.ci_high:+.2f}] | "
                  f"{cwv.mean_difference:+.5f} [{cwv.ci_low:+.5f}, {cwv.ci_high:+.5f}] |")


if __name__ == "__main__":
    main()
