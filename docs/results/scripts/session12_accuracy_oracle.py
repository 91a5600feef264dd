"""Session 12's diagnosis: the strongest-μ rule given a perfect estimate of each candidate's accuracy cost.

    PYTHONPATH=. python docs/results/scripts/session12_accuracy_oracle.py SET [SET ...]

Reads /work/runs/s11_<SET> (LTH, Magnitude Pruning, the default Ballot and every candidate its runs
trained). Per seed, in the mode the run chose, it takes the largest μ whose *test* accuracy is within
ε = 1 point of the μ = 0 candidate's (`acc_oracle`, the default's rule with test in place of
validation accuracy) or of LTH's (`acc_oracle_lth`, the bar's own accuracy reference), and prints the
bar cells (against LTH and Magnitude Pruning) each meets next to the default's. It reads the test
split: a diagnosis of how much a better accuracy-cost estimate could give, never a rule."""
import pathlib
import re
import sys

from experiments import compare, mu_frontier, reports

EPSILON = 0.01
METHODS = ("default", "acc_oracle", "acc_oracle_lth")
totals = dict.fromkeys(METHODS, 0)
for name in sys.argv[1:]:
    base = pathlib.Path(f"/work/runs/s11_{name}")
    lth = {(r["seed"], float(r["target_sparsity"])): r["test"]["accuracy"] for r in compare.load_records(base, "lth")}
    chosen = []
    for record in compare.load_records(base, "ballot"):
        mode = record.get("mode", "")
        candidates = {mu: compare.candidate_record(path)
                      for (m, mu), path in mu_frontier.candidate_dirs(base, record, "ballot").items() if m == mode}
        grid = list(record["search"])
        accuracy = {mu: candidates[mu]["test"]["accuracy"] for mu in grid}
        from_ticket = max((mu for mu in grid if accuracy[mu] >= accuracy[grid[0]] - EPSILON - 1e-12), key=float)
        floor = lth[(record["seed"], float(record["target_sparsity"]))] - EPSILON - 1e-12
        admissible = [mu for mu in grid if accuracy[mu] >= floor]
        from_lth = max(admissible, key=float) if admissible else max(grid, key=accuracy.get)
        chosen += [{**candidates[from_ticket], "method": "acc_oracle"}, {**candidates[from_lth], "method": "acc_oracle_lth"}]
    records = compare.collect([f"lth={base}:lth", f"magnitude={base}:magnitude", f"default={base}:ballot"]) + chosen
    paired = reports.paired_comparisons(records, against=list(METHODS), reference="default")
    cells = compare.bar_summary(paired, ["lth", "magnitude"])[-1]
    print(f"{name}: {cells}")
    for method in METHODS:
        totals[method] += int(re.search(rf"\b{method} (\d+) of", cells).group(1))
print("total cells met: " + ", ".join(f"{m} {n}" for m, n in totals.items()))
