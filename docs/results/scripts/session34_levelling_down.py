"""Session 34: what levelling down alone can buy under the bar of #13 (nothing trained; session34_preregistration.md).

Sessions 31-33 found that the refined training's parity is paid with the advantaged groups' accuracy (results A.2zo,
A.2zq, A.3). Levelling down alone, read from each run's Standard LTH record, nothing else changed:
- ``ld_test``: LTH's test group accuracies cut from the top (a'_g = min(a_g, L)) until the overall test accuracy has
  fallen by B = 1 point. It reads the test split (and so levels its sampling noise too): an upper bound.
- ``ld_val_<B>pt`` (binary tasks whose groups are an attribute known at prediction time): the cut chosen on LTH's
  validation group accuracies (overall validation accuracy down by B), each group's cut made by flipping a random
  fraction of its test predictions. Realisable, and harmful by construction: it helps no group.
Per set and sparsity: their bar cells and C16's against LTH and Magnitude Pruning (the library's paired comparisons
and bar, as every decision); C16 − ``ld_test`` at C16's own cost (LTH's test accuracy minus C16's, when positive):
does C16's term buy more parity per point than levelling down, i.e. does it raise anyone?; the worst-group test
accuracy of C16 and ``ld_val`` against the baselines, and every method's cells under the bar with a levelling-up
condition (``experiments.compare --bar-levelling-up``: the worst-group accuracy significantly higher too); on CelebA, each group's test accuracy above the constant
prediction of its own majority class (LTH, C16). Paired over seeds, 95% percentile bootstrap CIs. Group counts per
split are rebuilt from the loaders' split functions and checked to reproduce every record's overall accuracy.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session34_levelling_down.py [SET ...]

SET: the development sets by default (cifar10, bignose, wavy, blond, digits_lt10); the held-out sets (young, smiling,
attractive, male, synthetic, cifar10_lt10) only when named, read as a report after every decision (nothing here is
adopted: the oracle is a bound, not a candidate).
"""
import functools
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
BUDGET = 0.01  # the bar's accuracy tolerance, 1 point
REALISED_BUDGETS = (0.01, 0.009, 0.008)  # the realisable oracle's validation budgets
CHOSEN = 0.009  # the one read on the held-out sets, chosen on the development targets (session34_preregistration.md)
# binary sets whose groups are an attribute known at prediction time (not the classes): the realisable oracle applies
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
    y, group, (_, val, test) = celeba_split(name)
    return {"val": np.bincount(group[val], minlength=2), "test": np.bincount(group[test], minlength=2)}


@functools.lru_cache(maxsize=None)  # split_counts and majority_rates both need it: the attribute file read once a set
def celeba_split(name: str) -> tuple:
    """(y, group, (train, val, test) row indices) of a CelebA set, from the attribute file (no image decoded)."""
    with zipfile.ZipFile(DATA / "celeba-10k.zip") as z:  # group = Male (the attribute, or the label for "male")
        _, names, attrs = parse_attributes(z.read("celeba/list_attr_celeba.txt").decode())
    attrs, names = np.asarray(attrs), list(names)
    y = (attrs[:, names.index(CELEBA_TARGETS[name])] == 1).astype(int)
    group = y if name == "male" else (attrs[:, names.index("Male")] == 1).astype(int)
    return y, group, ordered_split(len(y), (0.1, 0.2), keys=y * 2 + group, seed=0)


def majority_rates(name: str) -> np.ndarray:
    """Each group's test accuracy of the constant prediction of its own majority class (CelebA, groups = Male)."""
    y, group, (_, _, test) = celeba_split(name)
    rate = np.array([y[test][group[test] == g].mean() for g in (0, 1)])
    return np.maximum(rate, 1 - rate)


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
            "mcd": float(accuracy.max() - accuracy.min()), "worst_group_accuracy": float(accuracy.min()),
            "per_group_accuracy": accuracy.tolist()}
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
        if name in CELEBA_TARGETS and name != "male":
            rates = majority_rates(name)
            above = {m: np.mean([np.asarray(r["test"]["per_group_accuracy"]) for r in rs], axis=0) - rates
                     for m, rs in (("LTH", lth), ("C16", list(c16.values())))}
            print("   test accuracy above each group's majority-class rate (women, men; points, mean of the runs): "
                  + "; ".join(f"{m} {100 * a[0]:+.1f}, {100 * a[1]:+.1f}" for m, a in above.items())
                  + f" (the rates {np.round(100 * rates, 1).tolist()})")
        print("\n".join(line for line in compare.bar_summary(paired, ["lth", "magnitude"]) if line.startswith("|")))
        strict = compare.bar_summary(paired, ["lth", "magnitude"], levelling_up=True)
        print("   with levelling up (`--bar-levelling-up`): " + strict[-1].removeprefix("Cells met: "))
        for sparsity in sorted({r["target_sparsity"] for r in lth}):  # does C16's term do more than level down?
            runs = {k[0]: r for k, r in c16.items() if k[1] == sparsity}
            ticket = {r["seed"]: r for r in lth if r["target_sparsity"] == sparsity}
            cost = {s: max(0.0, r["test"]["accuracy"] - runs[s]["test"]["accuracy"]) for s, r in ticket.items()}
            at_cost = {s: test_oracle(r, counts, cost[s]) for s, r in ticket.items()}
            parts = []
            for metric, scale, fmt in (("cwv", 1, "+.5f"), ("mcd", 100, "+.2f")):
                p = stats.paired_comparison({s: r["test"][metric] for s, r in runs.items()},
                                            {s: r["test"][metric] for s, r in at_cost.items()})
                parts.append(f"{metric.upper()} {scale * p.mean_difference:{fmt}} [{scale * p.ci_low:{fmt}}, "
                             f"{scale * p.ci_high:{fmt}}] (wins {p.wins}/{len(runs)})")
            print(f"   {sparsity:g}: C16 - ld_test at C16's own cost (mean {100 * np.mean(list(cost.values())):.2f} "
                  "points): " + "; ".join(parts))
            for method in ("c16", f"ld_val_{100 * CHOSEN:g}pt"):
                worst = [e for e in paired if e["method"] == method and e["sparsity"] == sparsity
                         and e["metric"] == "worst_group_accuracy"]
                if worst:
                    print(f"   {sparsity:g}: {method}'s worst-group test accuracy: " + "; ".join(
                        f"vs {e['baseline']} {100 * e['mean_difference']:+.2f} [{100 * e['ci_low']:+.2f}, "
                        f"{100 * e['ci_high']:+.2f}] points (wins {e['wins']}/{len(e['differences'])})" for e in worst))


if __name__ == "__main__":
    main(sys.argv[1:])
