"""Session 31: what a perfect estimate of each candidate's accuracy cost could buy the default (C16), on the two
development sets whose every candidate is exported (Big_Nose, seeds 0-9; CIFAR-10 re-created on this machine, seeds
0-4). Session 12's diagnosis (session12_accuracy_oracle.py, results A.2s) re-read with today's records and rule: it
bounds what a finer accuracy constraint (e.g. the μ choice cross-fitted over folds of the training split, method.md
§5.7) could give, before anyone builds it. It reads the test split: a diagnosis, never a rule.

Per run, in the mode the run chose, among the candidates it trained:
- default: the record's own choice (C16: session29_c16_<SET>.json);
- test_prefix: C16's rule with each candidate's *test* accuracy in place of its validation accuracy, ε = 1 point from
  the μ = 0 candidate (what a perfect estimate of the cost the rule measures would choose);
- test_prefix_lth: the same walk, ε = 1 point from LTH's test accuracy (the bar's own reference);
- fair_oracle: the lowest test CWV among the candidates within 1 test point of LTH (if none, the most accurate): the
  most any μ choice among these candidates could reach on this test split (optimistic: it selects on test noise).
Prints each one's bar cells (CWV and MCD significantly lower than LTH's and Magnitude Pruning's, accuracy within a point
of LTH) per set and in total.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session31_accuracy_oracle.py [--rows] [SET ...]
"""
import json
import pathlib
import sys

from experiments import compare, reports
from session14_decide import met_cells

R = pathlib.Path("docs/results/records")
EPSILON = 0.01
SETS = {  # name: (records of LTH and Magnitude Pruning, C16's records, every candidate exported)
    "big_nose": (R / "session29_Big_Nose.json", R / "session29_c16_big_nose.json", R / "session29_Big_Nose_candidates.json"),
    "cifar10": (R / "session29_cifar10.json", R / "session29_c16_cifar10.json", R / "session29_cifar10_candidates_all.json"),
    # held out: read only as the bound's reach, after this bound's reading on the development sets (nothing chosen)
    "synthetic": (R / "session30_synthetic.json", R / "session30_c16_synthetic.json", R / "session30_synthetic_candidates_all.json"),
    "cifar10_lt10": (R / "session30_cifar10_lt10.json", R / "session30_c16_cifar10_lt10.json",
                     R / "session30_cifar10_lt10_candidates_all.json"),
}
VARIANTS = ("default", "test_prefix", "test_prefix_lth", "fair_oracle")


def walk(grid: list, accuracy: dict, reference: float) -> str:
    """C16's walk: the last μ before the first whose accuracy is more than ε below ``reference`` (none: the first)."""
    chosen = grid[0]
    for mu in grid:
        if accuracy[mu] < reference - EPSILON - 1e-12:
            break
        chosen = mu
    return chosen


def variant_records(name: str) -> dict:
    baselines_path, c16_path, candidates_path = SETS[name]
    baselines = [r for r in json.load(open(baselines_path))["records"] if r["method"] in ("lth", "magnitude")]
    lth = {(r["seed"], r["target_sparsity"]): r["test"]["accuracy"] for r in baselines if r["method"] == "lth"}
    candidates = {}
    for c in json.load(open(candidates_path))["candidates"]:
        candidates.setdefault((c["seed"], c["target_sparsity"], c["mode"]), {})[c["mu"]] = c
    out = {v: [] for v in VARIANTS}
    changed = dict.fromkeys(VARIANTS, 0)
    for r in json.load(open(c16_path))["records"]:
        run = candidates[(r["seed"], r["target_sparsity"], r["mode"])]
        grid = sorted(r["search"], key=float)
        if sorted(run, key=float) != grid:
            raise SystemExit(f"{name}: seed {r['seed']} {r['target_sparsity']}: exported candidates {sorted(run)} "
                             f"are not the run's grid {grid}")
        if run[f"{r['disparity_weight']:g}"]["test"] != r["test"]:
            raise SystemExit(f"{name}: seed {r['seed']}: the exported chosen candidate does not reproduce the record")
        accuracy = {mu: run[mu]["test"]["accuracy"] for mu in grid}
        floor = lth[(r["seed"], r["target_sparsity"])] - EPSILON - 1e-12
        within = [mu for mu in grid if accuracy[mu] >= floor]
        choice = {
            "default": f"{r['disparity_weight']:g}",
            "test_prefix": walk(grid, accuracy, accuracy[grid[0]]),
            "test_prefix_lth": walk(grid, accuracy, lth[(r["seed"], r["target_sparsity"])]),
            "fair_oracle": (min(within, key=lambda mu: run[mu]["test"]["cwv"]) if within
                            else max(grid, key=accuracy.get)),
        }
        for variant, mu in choice.items():
            changed[variant] += mu != choice["default"]
            out[variant].append({**r, "method": "ballot", "disparity_weight": float(mu),
                                 "val": run[mu]["val"], "test": run[mu]["test"]})
    return {v: (baselines + out[v], changed[v]) for v in VARIANTS}


def main() -> None:
    """Bar cells of every variant per set (``--rows``: their bar tables)."""
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or ["big_nose", "cifar10"]
    totals = dict.fromkeys(VARIANTS, 0)
    for name in names:
        cells = []
        for variant, (records, changed) in variant_records(name).items():
            paired = reports.paired_comparisons(records, against=["ballot"])
            n = met_cells(paired)
            if "--rows" in flags:
                rows = [line for line in compare.bar_summary(paired, ["lth", "magnitude"]) if line.startswith("| ballot")]
                print(f"-- {name} {variant}\n" + "\n".join(rows))
            totals[variant] += n
            cells.append(f"{variant} {n} ({changed} runs changed)")
        print(f"{name}: " + ", ".join(cells))
    print(f"total bar cells of {4 * len(names)}: " + ", ".join(f"{v} {n}" for v, n in totals.items()))


if __name__ == "__main__":
    main()
