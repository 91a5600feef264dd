"""Diagnosis: the strongest-μ rule with a perfect accuracy-cost estimate (reads test accuracy)."""
import pathlib, sys
from experiments import compare, mu_frontier, reports
EPS = 0.01
tot = {"default": 0, "acc_oracle": 0, "acc_oracle_lth": 0}
for name in sys.argv[1:]:
    base = pathlib.Path(f"/work/runs/s11_{name}")
    lth = {(r["seed"], float(r["target_sparsity"])): r["test"]["accuracy"] for r in compare.load_records(base, "lth")}
    out = []
    for r in compare.load_records(base, "ballot"):
        dirs = mu_frontier.candidate_dirs(base, r, "ballot")
        mode = r.get("mode", "")
        cands = {mu: compare.candidate_record(p) for (m, mu), p in dirs.items() if m == mode}
        grid = list(r["search"])
        a0 = cands[grid[0]]["test"]["accuracy"]
        mu1 = max((mu for mu in grid if cands[mu]["test"]["accuracy"] >= a0 - EPS - 1e-12), key=float)
        ref = lth[(r["seed"], float(r["target_sparsity"]))]
        ok = [mu for mu in grid if cands[mu]["test"]["accuracy"] >= ref - EPS - 1e-12]
        mu2 = max(ok, key=float) if ok else max(grid, key=lambda mu: cands[mu]["test"]["accuracy"])
        out.append({**cands[mu1], "method": "acc_oracle"}); out.append({**cands[mu2], "method": "acc_oracle_lth"})
    records = compare.collect([f"lth={base}:lth", f"magnitude={base}:magnitude", f"default={base}:ballot"]) + out
    bar = compare.bar_summary(reports.paired_comparisons(records, against=["default", "acc_oracle", "acc_oracle_lth"], reference="default"), ["lth", "magnitude"])
    print(name, bar[-1])
    for m in tot:
        import re
        tot[m] += int(re.search(rf"{m} (\d+) of", bar[-1]).group(1))
print(tot)
