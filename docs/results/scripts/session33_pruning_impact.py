"""Session 33: does pruning itself widen the groups' gap at this project's scale (nothing trained)? The premise of
spending capacity on the disadvantaged groups (method.md §5.7's last paragraph): if Standard LTH's ticket is no less
fair than the dense network it was pruned from, there is no pruning-made disparity for a fair pruning method to give
back, and a fairer ticket must be fairer than the dense network too.

Per run (seed) of Standard LTH in the development workdirs on this machine: level 0 is the trained dense network of
that seed, the last level the ticket at the target sparsity. Paired over seeds (ticket − dense, test split, 95%
percentile bootstrap CI of ``ballot_jax.stats``): overall accuracy, CWV, and the accuracy of the group worst and the
group best on *validation* at level 0 (chosen on validation so that the test split's noise does not pick them).

    PYTHONPATH=.:docs/results/scripts python3 docs/results/scripts/session33_pruning_impact.py
"""
import glob
import json

from ballot_jax import stats
from session31_levelling import worst_and_best

# development sets only, with their LTH workdirs on this machine (Blond_Hair's and Wavy_Hair's are gone)
WORKDIRS = {"cifar10": "/work/runs/s29_dev_cifar10_{sp}", "big_nose": "/work/runs/s29_dev_Big_Nose_*",
            "digits_lt10": "/work/runs/s31_digits_lt10"}


def ticket_minus_dense(dense: dict, ticket: dict) -> dict:
    """``{quantity: ticket − dense}`` of one run (records with ``val`` and ``test``): test accuracy, test CWV, and the
    test accuracy of the groups worst and best on the dense network's validation split."""
    lo, hi = worst_and_best(dense["val"]["per_group_accuracy"])
    t0, t = dense["test"]["per_group_accuracy"], ticket["test"]["per_group_accuracy"]
    return {"accuracy": ticket["test"]["accuracy"] - dense["test"]["accuracy"],
            "cwv": ticket["test"]["cwv"] - dense["test"]["cwv"], "worst group": t[lo] - t0[lo], "best group": t[hi] - t0[hi]}


def changes(pattern: str, sparsity: str) -> dict:
    """``{quantity: {seed: ticket − dense}}`` for one set and target sparsity."""
    out = {"accuracy": {}, "cwv": {}, "worst group": {}, "best group": {}}
    paths = sorted(glob.glob(f"{pattern.format(sp=sparsity)}/seed_*/sparsity_{int(sparsity) / 100:g}/lth.record.json"))
    if not paths:
        raise SystemExit(f"no LTH records under {pattern.format(sp=sparsity)} (the workdirs are on the session-29/31 machine)")
    for path in paths:
        r = json.load(open(path))
        for key, value in ticket_minus_dense(r["levels"][0], r).items():
            out[key][r["seed"]] = value
    return out


HEADER = ("| set | sparsity | seeds | accuracy (pt) | CWV | group worst on val (pt) | group best on val (pt) |\n"
          "|---|---|---|---|---|---|---|")


def row(name: str, sparsity: str, by_quantity: dict) -> str:
    """One table row: each quantity's paired mean over seeds against 0, [95% CI], * where the CI excludes 0."""
    cells = []
    for key, d in by_quantity.items():
        c = stats.paired_comparison(d, {s: 0.0 for s in d}, higher_is_better=key != "cwv")
        scale, spec = (1, "+.5f") if key == "cwv" else (100, "+.2f")
        mark = " *" if c.significant else ""
        cells.append(f"{c.mean_difference * scale:{spec}} [{c.ci_low * scale:{spec}}, {c.ci_high * scale:{spec}}]{mark}")
    return f"| {name} | {int(sparsity)}% | {c.n} | " + " | ".join(cells) + " |"


def main() -> None:
    print(HEADER)
    for name, pattern in WORKDIRS.items():
        for sparsity in ("80", "95"):
            print(row(name, sparsity, changes(pattern, sparsity)))
    print("ticket − dense of the same seed, mean [95% CI]; * the CI excludes 0")


if __name__ == "__main__":
    main()
