"""Session 31: C18's candidates against C16's at the same μ (CIFAR-10, after C18's decision; nothing chosen). Each run
keeps C16's mode (checked by the decision), so a μ > 0 candidate of C18 and C16's at the same μ differ only by the
anchor term: mean C18 − C16 test accuracy (points) and CWV per μ and sparsity, and the levelling reading of
session31_levelling.py for both (test-accuracy change from μ = 0 of the groups worst and best on validation at μ = 0).

    python3 docs/results/scripts/session31_c18_candidates.py [c18|c19] [cifar10|big_nose]

``c19`` reads C19's candidates (session32_preregistration.md: the one-sided adversary) the same way; ``big_nose`` reads
that development set's candidates instead of CIFAR-10's (C16's: session29_Big_Nose_candidates.json).
"""
import json
import statistics
import sys

R = "docs/results/records"


def load(path):
    out = {}
    for c in json.load(open(f"{R}/{path}"))["candidates"]:
        out[(c["seed"], c["target_sparsity"], c["mode"], c["mu"])] = c
    return out


VARIANT = sys.argv[1] if len(sys.argv) > 1 else "c18"
NAME = VARIANT.upper()
SET = sys.argv[2] if len(sys.argv) > 2 else "cifar10"
C16_FILES = {"cifar10": ("session29_cifar10_candidates_all.json", "cifar10"),
             "big_nose": ("session29_Big_Nose_candidates.json", "bignose")}
c16, c18 = load(C16_FILES[SET][0]), load(f"session31_{VARIANT}_{C16_FILES[SET][1]}_candidates.json")
for sparsity in (0.8, 0.95):
    for mu in ("0.3", "1", "3"):
        keys = [k for k in c18 if k[1] == sparsity and k[3] == mu and k in c16]
        acc = [c18[k]["test"]["accuracy"] - c16[k]["test"]["accuracy"] for k in keys]
        cwv = [c18[k]["test"]["cwv"] - c16[k]["test"]["cwv"] for k in keys]
        moves = {}
        for label, cands in (("C16", c16), (NAME, c18)):
            worst, best = [], []
            for k in keys:
                zero = cands[(*k[:3], "0")]  # the same candidate in both (checked by the decision)
                val0 = zero["val"]["per_group_accuracy"]
                lo, hi = min(range(len(val0)), key=val0.__getitem__), max(range(len(val0)), key=val0.__getitem__)
                worst.append(cands[k]["test"]["per_group_accuracy"][lo] - zero["test"]["per_group_accuracy"][lo])
                best.append(cands[k]["test"]["per_group_accuracy"][hi] - zero["test"]["per_group_accuracy"][hi])
            moves[label] = f"{100 * statistics.mean(worst):+.2f} / {100 * statistics.mean(best):+.2f}"
        print(f"{sparsity:.0%} mu {mu}: {len(keys)} runs; {NAME} - C16 accuracy {100 * statistics.mean(acc):+.2f} points, "
              f"CWV {statistics.mean(cwv):+.5f}; from mu = 0, worst / best group on validation: C16 {moves['C16']}, "
              f"{NAME} {moves[NAME]}")
for sparsity in (0.8, 0.95):  # each μ's mean test (accuracy, CWV) in the mode each run chose: where each lands
    for label, cands in (("C16", c16), (NAME, c18)):
        points = []
        for mu in ("0", "0.3", "1", "3"):
            keys = [k for k in c18 if k[1] == sparsity and k[3] == mu and (*k[:3], "0.3") in c18]
            points.append(f"mu {mu}: {100 * statistics.mean(cands[k]['test']['accuracy'] for k in keys):.2f} / "
                          f"{statistics.mean(cands[k]['test']['cwv'] for k in keys):.5f}")
        print(f"{sparsity:.0%} {label} test accuracy / CWV: " + " | ".join(points))
