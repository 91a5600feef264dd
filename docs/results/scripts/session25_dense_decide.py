"""Session 25, Stage A's rule (docs/results/scripts/session25_preregistration.md), read from the dense records in
/work/runs/s25_<SET>_<T>: worst(T) = mean over the two development targets of the lowest validation accuracy over
seeds 0-9; admissible if mean(T) >= mean(T0) - 0.5 points; the highest worst(T) wins (ties within 0.1: higher mean)
and replaces T0 only if it beats worst(T0) by more than 1 point. Test figures and collapses are reported, not used.

usage: python docs/results/scripts/session25_dense_decide.py [RUNS_DIR]
"""
import json
import sys
from pathlib import Path

RUNS = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/runs")
SETS, CANDIDATES, SEEDS = ("blond", "wavy"), ("T0", "T1", "T2", "T3"), range(10)


def dense(set_name, t, seed):
    return json.loads((RUNS / f"s25_{set_name}_{t}" / f"seed_{seed}" / "dense" / "record.json").read_text())


rows = {}
for t in CANDIDATES:
    recs = {s: [dense(s, t, seed) for seed in SEEDS] for s in SETS}
    val = {s: [100 * r["val"]["accuracy"] for r in recs[s]] for s in SETS}
    test = {s: [100 * r["test"]["accuracy"] for r in recs[s]] for s in SETS}
    rows[t] = dict(
        worst=sum(min(val[s]) for s in SETS) / len(SETS),
        mean=sum(sum(val[s]) for s in SETS) / (len(SETS) * len(SEEDS)),
        test_mean=sum(sum(test[s]) for s in SETS) / (len(SETS) * len(SEEDS)),
        test_worst=sum(min(test[s]) for s in SETS) / len(SETS),
        collapsed_val=sum(r["val"]["demographic_parity_difference"] < 0.01 for s in SETS for r in recs[s]),
        collapsed_test=sum(r["test"]["demographic_parity_difference"] < 0.01 for s in SETS for r in recs[s]),
        per_seed={s: [round(v, 2) for v in val[s]] for s in SETS},
    )

print("| T | worst val (mean of 2 targets) | mean val | admissible | collapsed val / test (of 20) | worst test | mean test |")
print("|---|---|---|---|---|---|---|")
admissible = [t for t in CANDIDATES if rows[t]["mean"] >= rows["T0"]["mean"] - 0.5]
for t in CANDIDATES:
    r = rows[t]
    print(f"| {t} | {r['worst']:.2f} | {r['mean']:.2f} | {'yes' if t in admissible else 'no'} | "
          f"{r['collapsed_val']} / {r['collapsed_test']} | {r['test_worst']:.2f} | {r['test_mean']:.2f} |")
print()
for t in CANDIDATES:
    print(f"- {t} validation accuracy per seed: {rows[t]['per_seed']}")
best = max(rows[t]["worst"] for t in admissible)
tied = [t for t in admissible if rows[t]["worst"] >= best - 0.1]
winner = max(tied, key=lambda t: rows[t]["mean"])
if winner != "T0" and rows[winner]["worst"] > rows["T0"]["worst"] + 1.0:
    print(f"\n**decision: {winner} replaces T0** (worst {rows[winner]['worst']:.2f} vs {rows['T0']['worst']:.2f})")
else:
    print(f"\n**decision: T0 stays** (best admissible {winner}, worst {rows[winner]['worst']:.2f} vs {rows['T0']['worst']:.2f})")
