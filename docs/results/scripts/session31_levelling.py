"""Session 31: where the refined training's parity comes from (nothing trained). Per run, in the mode it chose, each
μ > 0 candidate's change in test accuracy from the μ = 0 candidate for the group that was worst and the group that was
best on *validation* at μ = 0 (chosen on validation so that the test split's noise does not pick them), and overall.
Levelling up: the worst group gains; levelling down: the best group loses. Development sets only.

    python3 docs/results/scripts/session31_levelling.py
"""
import json
import statistics

R = "docs/results/records"
# development sets only (the next design is chosen from this reading); their every candidate is exported
SETS = {"big_nose": "session29_Big_Nose_candidates.json", "cifar10": "session29_cifar10_candidates_all.json"}


def worst_and_best(accuracy: list) -> tuple[int, int]:
    """The indices of the least and the most accurate group (the first of equals)."""
    return min(range(len(accuracy)), key=accuracy.__getitem__), max(range(len(accuracy)), key=accuracy.__getitem__)


def main() -> None:
    for name, path in SETS.items():
        runs = {}
        for c in json.load(open(f"{R}/{path}"))["candidates"]:
            runs.setdefault((c["seed"], c["target_sparsity"], c["mode"]), {})[c["mu"]] = c
        for mu in ("0.3", "1", "3"):
            worst, best, overall = [], [], []
            for run in runs.values():
                if mu not in run:  # the other mode's μ = 0 candidate alone
                    continue
                val0 = run["0"]["val"]["per_group_accuracy"]
                lo, hi = worst_and_best(val0)
                t0, t = run["0"]["test"]["per_group_accuracy"], run[mu]["test"]["per_group_accuracy"]
                worst.append(t[lo] - t0[lo])
                best.append(t[hi] - t0[hi])
                overall.append(run[mu]["test"]["accuracy"] - run["0"]["test"]["accuracy"])
            print(f"{name} mu {mu}: {len(worst)} runs; test accuracy change from mu = 0 (points): group worst on validation "
                  f"{100 * statistics.mean(worst):+.2f}, best {100 * statistics.mean(best):+.2f}, overall "
                  f"{100 * statistics.mean(overall):+.2f}")


if __name__ == "__main__":
    main()
