"""Session 34: what levelling down alone can buy under the bar's accuracy tolerance (nothing trained).

Sessions 31-33 found that the refined training's parity is paid with the advantaged groups' accuracy (results A.2zo,
A.2zq, A.3). This script measures the end point of that finding on the development records: the *levelling-down
oracle* takes each run's Standard LTH ticket and lowers the accuracies of its most accurate groups, from the top
(a'_g = min(a_g, L), L chosen so that the overall test accuracy falls by exactly the budget B), and nothing else.
It is realisable in expectation without labels (flip a random fraction of an advantaged group's predictions), so it
is a lower bound on what the bar can be met with, not a method anyone should use. With B = 1 point (the bar's
tolerance) it answers: does the bar reward levelling down alone? At B = each run's own C16 cost (LTH's test accuracy
minus C16's, when positive) it answers: does C16's term buy more parity per point than levelling down, i.e. does it
raise anyone?

Per development set and sparsity: the oracle's bar cells against LTH and Magnitude Pruning (the library's paired
comparisons and bar, as every decision), C16's own cells from its records, and C16 − oracle at C16's cost (CWV, MCD;
paired over seeds, 95% percentile bootstrap CI). Group shares of the test split: CelebA from the attribute file's
last 2,000 rows (the loader's test split), digits-LT10 from its loader, CIFAR-10 equal (500 images a class); every
record's overall accuracy is checked to equal the share-weighted mean of its group accuracies.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session34_levelling_down.py [SET ...]

SET: the development sets by default (cifar10, bignose, wavy, blond, digits_lt10); the held-out sets (young, smiling,
attractive, male, synthetic, cifar10_lt10) only when named, read as a report after every decision (nothing here is
adopted: the oracle is a bound, not a candidate).
"""
import json
import pathlib
import sys
import zipfile

import numpy as np

from ballot_jax import stats
from ballot_jax.data.celeba import ordered_split, parse_attributes
from ballot_jax.data.digits import load_digits
from ballot_jax.data.synthetic import make_synthetic_biased
from experiments import compare, reports
import session30_heldout
from session31_decide import R, SETS, records

CELEBA_TARGETS = {"bignose": "Big_Nose", "wavy": "Wavy_Hair", "blond": "Blond_Hair", "young": "Young",
                  "smiling": "Smiling", "attractive": "Attractive", "male": "Male"}
# sets whose groups are an attribute known at prediction time (not the classes): the realisable oracle applies
BUDGET = 0.01  # the bar's accuracy tolerance, 1 point
REALISED_BUDGETS = (0.01, 0.009, 0.008)  # the realisable oracle's validation budgets
ATTRIBUTE_GROUPS = ("bignose", "wavy", "blond", "young", "smiling", "attractive", "synthetic")
DATA = pathlib.Path(__file__).resolve().parents[4] / "shared" / "data"


def split_counts(name: str) -> dict:
    """``{"val": counts, "test": counts}``: each group's number of examples per split (group order as the records'
    ``per_group_accuracy``), rebuilt from the loaders' own split functions without decoding an image."""
    if name in ("cifar10", "cifar10_lt10"):  # groups = the 10 classes; only the test split's shares are used
        return {"test": np.full(10, 500)}
    if name == "digits_lt10":
        data = load_digits(imbalance_ratio=10)
        return {s: np.bincount(np.asarray(getattr(data, s).group), minlength=10) for s in ("val", "test")}
    if name == "synthetic":  # experiments.synthetic's data config
        data = make_synthetic_biased(num_train=4000, num_val=1000, num_test=2000, num_groups=4,
                                     minority_fraction=0.15, seed=0)
        return {s: np.bincount(np.asarray(getattr(data, s).group), minlength=4) for s in ("val", "test")}
    with zipfile.ZipFile(DATA / "celeba-10k.zip") as z:  # group = Male (the attribute, or the label for "male")
        _, names, attrs = parse_attributes(z.read("celeba/list_attr_celeba.txt").decode())
    attrs, names = np.asarray(attrs), list(names)
    y = (attrs[:, names.index(CELEBA_TARGETS[name])] == 1).astype(int)
    group = y if name == "male" else (attrs[:, names.index("Male")] == 1).astype(int)
    _, val, test = ordered_split(len(y), (0.1, 0.2), keys=y * 2 + group, seed=0)
    return {"val": np.bincount(group[val], minlength=2), "test": np.bincount(group[test], minlength=2)}


def level_down(accuracy: np.ndarray, shares: np.ndarray, budget: float) -> np.ndarray:
    """The group accuracies cut from the top at the level L where the overall accuracy has fallen by ``budget``
    (all groups at the lowest one's accuracy if the budget exceeds what that costs)."""
    def cost(level):
        return float(np.sum(shares * np.maximum(accuracy - level, 0.0)))
    if budget <= 0.0:
        return accuracy.copy()
    low, high = float(accuracy.min()), float(accuracy.max())
    if cost(low) <= budget:
        return np.full_like(accuracy, low)
    for _ in range(100):  # bisection on L: cost is continuous and decreasing in L
        mid = (low + high) / 2
        low, high = (low, mid) if cost(mid) < budget else (mid, high)
    return np.minimum(accuracy, (low + high) / 2)


def with_test(record: dict, accuracy: np.ndarray, shares: np.ndarray, method: str) -> dict:
    """A record of ``method`` for ``record``'s seed and sparsity whose test group accuracies are ``accuracy`` (test
    accuracy, CWV and MCD recomputed as ``ballot_jax.metrics`` defines them)."""
    test = {"accuracy": float(np.sum(shares * accuracy)), "cwv": float(np.var(accuracy)),
            "mcd": float(accuracy.max() - accuracy.min()), "per_group_accuracy": accuracy.tolist()}
    return {"method": method, "seed": record["seed"], "target_sparsity": record["target_sparsity"], "test": test}


def test_oracle(lth: dict, counts: dict, budget: float) -> dict:
    """LTH's test group accuracies levelled down by ``budget`` (reads the test split: an upper bound)."""
    shares = counts["test"] / counts["test"].sum()
    return with_test(lth, level_down(np.asarray(lth["test"]["per_group_accuracy"], float), shares, budget), shares,
                     "ld_test")


def realised(lth: dict, counts: dict, budget: float) -> dict:
    """The realisable levelling down of a binary task whose groups are known at prediction time: the cut chosen on
    LTH's *validation* group accuracies (overall validation accuracy down by ``budget``), each group's cut made by
    flipping a random fraction r_g = cut_g / (2 v_g - 1) of its test predictions (a flip turns a right prediction wrong
    and a wrong one right), drawn once per run with a fixed seed."""
    v = np.asarray(lth["val"]["per_group_accuracy"], float)
    cut = v - level_down(v, counts["val"] / counts["val"].sum(), budget)
    rate = np.where(2 * v - 1 > 0, cut / np.maximum(2 * v - 1, 1e-12), 0.0).clip(0.0, 1.0)
    n = counts["test"]
    right = np.round(np.asarray(lth["test"]["per_group_accuracy"], float) * n).astype(int)
    rng = np.random.default_rng([int(lth["seed"]), round(1000 * lth["target_sparsity"]), round(1e4 * budget)])
    right = right - rng.binomial(right, rate) + rng.binomial(n - right, rate)
    return with_test(lth, right / n, n / n.sum(), f"ld_val_{100 * budget:g}pt")


def checked(recs: list, counts: dict, name: str) -> list:
    """``recs``, after checking that each split's group counts reproduce every record's overall accuracy."""
    for r in recs:
        for split, n in counts.items():
            mean = float(np.sum(n * np.asarray(r[split]["per_group_accuracy"])) / n.sum())
            if abs(mean - r[split]["accuracy"]) > 1e-5:
                raise SystemExit(f"{name}: the {split} group counts do not reproduce {r['method']} seed {r['seed']}'s "
                                 f"accuracy ({mean:.6f} against {r[split]['accuracy']:.6f})")
    return recs


def held_out_sets() -> dict:
    """{SET: (the files holding LTH's and Magnitude Pruning's records, C16's records)} of the six held-out sets, as
    session30_heldout.py reads them (C16's records written by it)."""
    return {name: ([pathlib.Path(f) for f in files], R / f"session30_c16_{name}.json")
            for name, (files, _) in session30_heldout.held_out_sets().items()}


def main(names: list) -> None:
    sets = {**SETS, **held_out_sets()}
    for name in names or list(SETS):
        files, c16_path = sets[name]
        counts = split_counts(name)
        lth = checked([r for f in files for r in records(f, "lth")], counts, name)
        magnitude = checked([r for f in files for r in records(f, "magnitude")], counts, name)
        c16 = {(r["seed"], r["target_sparsity"]): r for r in checked(records(c16_path, "c16"), counts, name)}
        oracles = [test_oracle(r, counts, BUDGET) for r in lth]
        if name in ATTRIBUTE_GROUPS:
            oracles += [realised(r, counts, b) for b in REALISED_BUDGETS for r in lth]
        judged = ["c16"] + list(dict.fromkeys(r["method"] for r in oracles))
        paired = reports.paired_comparisons(lth + magnitude + list(c16.values()) + oracles, against=judged)
        print(f"== {name} ({len(lth)} LTH runs)")
        print("\n".join(line for line in compare.bar_summary(paired, ["lth", "magnitude"]) if line.startswith("|")))
        for sparsity in sorted({r["target_sparsity"] for r in lth}):  # does C16's term do more than level down?
            runs = {k[0]: r for k, r in c16.items() if k[1] == sparsity}
            at_cost = {r["seed"]: test_oracle(r, counts, max(0.0, r["test"]["accuracy"] - runs[r["seed"]]["test"][
                "accuracy"])) for r in lth if r["target_sparsity"] == sparsity}
            parts = []
            for metric, scale, fmt in (("cwv", 1, "+.5f"), ("mcd", 100, "+.2f")):
                p = stats.paired_comparison({s: r["test"][metric] for s, r in runs.items()},
                                            {s: r["test"][metric] for s, r in at_cost.items()})
                parts.append(f"{metric.upper()} {scale * p.mean_difference:{fmt}} [{scale * p.ci_low:{fmt}}, "
                             f"{scale * p.ci_high:{fmt}}] (wins {p.wins}/{len(runs)})")
            cost = np.mean([max(0.0, r["test"]["accuracy"] - runs[r["seed"]]["test"]["accuracy"])
                            for r in lth if r["target_sparsity"] == sparsity])
            print(f"   {sparsity:g}: C16 - ld_test at C16's own cost (mean {100 * cost:.2f} points): " + "; ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1:])
