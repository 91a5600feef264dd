"""Session 12's pre-registered test of the pooled μ choice (docs/results/scripts/session12_preregistration.md).

    PYTHONPATH=. python docs/results/scripts/session12_decide.py [SET ...]

For each set (default: the development sets blond wavy cifar10) reads /work/runs/s11_<SET> (lth,
magnitude, the default ballot and every candidate its runs trained), re-chooses μ per sparsity
from the seeds' pooled validation accuracy costs, and prints per row the pooled choice's paired
differences against the default, session 11's decision criteria and both choices' cells of
issue #13's bar (against LTH and Magnitude Pruning)."""
import pathlib
import sys

import numpy as np

from experiments import compare, mu_frontier, reports

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import session11_decide  # noqa: E402  (the decision rule, shared)

EPSILON = 0.01


def pooled_records(workdir: pathlib.Path) -> list[dict]:
    """The default's records re-chosen at the pooled μ* of each sparsity (each μ* is printed)."""
    runs = compare.load_records(workdir, "ballot")
    out = []
    for sparsity in sorted({float(r["target_sparsity"]) for r in runs}):
        group = [r for r in runs if float(r["target_sparsity"]) == sparsity]
        grid = list(group[0]["search"])
        cost = {mu: np.mean([r["search"][mu]["accuracy"] - r["search"][grid[0]]["accuracy"] for r in group]) for mu in grid}
        mu_star = max((mu for mu in grid if cost[mu] >= -EPSILON - 1e-12), key=float)
        print(f"  {workdir.name} {sparsity:g}: pooled val cost (pp) " +
              ", ".join(f"μ={mu}: {100 * c:+.2f}" for mu, c in cost.items()) + f" -> μ* = {mu_star}; per-run choices "
              + ",".join(f"{r['disparity_weight']:g}" for r in sorted(group, key=lambda r: r["seed"])))
        for r in group:
            dirs = mu_frontier.candidate_dirs(workdir, r, "ballot")
            candidate = compare.candidate_record(dirs[(r.get("mode", ""), mu_star)])
            out.append({**candidate, "method": "pooled"})
    return out


if __name__ == "__main__":
    sets = sys.argv[1:] or ["blond", "wavy", "cifar10"]
    better_rows, failures = [], []
    for name in sets:
        base = pathlib.Path(f"/work/runs/s11_{name}")
        pooled = pooled_records(base)
        records = compare.collect([f"lth={base}:lth", f"magnitude={base}:magnitude", f"default={base}:ballot"]) + pooled
        bar = compare.bar_summary(reports.paired_comparisons(records, against=["default", "pooled"], reference="default"),
                                  ["lth", "magnitude"])
        print(f"  {name} bar: {bar[-1]}")
        session11_decide.judge(name, records, "pooled", better_rows, failures)
    session11_decide.verdict("pooled", better_rows, failures)
