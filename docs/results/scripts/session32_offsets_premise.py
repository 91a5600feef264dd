"""Session 32: does a logit offset fitted on the validation split buy test parity more cheaply than the adversary term?

Evaluation only, on the logits session32_logits.py caches (development sets with workdirs on this machine: Big_Nose
seeds 0-9, CIFAR-10 seeds 0-4; 80% and 95%). Every variant tried is printed (none left out):
- ``none``: the model as trained.
- ``own``: each group's offset at its own validation-accuracy optimum. Demographic groups (Big_Nose, groups = Male,
  known at inference): one offset per group on the binary margin z1 − z0. Groups = classes (CIFAR-10): one offset per
  class logit, coordinate ascent on validation accuracy.
- ``worst``: only the group worst on validation moves. Demographic groups: that group's offset at its own optimum.
  Classes: coordinate ascent on the worst class's validation accuracy, subject to the run's ε' (validation accuracy
  no more than ε' below the model's own).
Offsets are chosen from the midpoints between sorted validation margins (ties: the smallest |offset|); coordinate
ascent sweeps the classes 3 times over a grid of 41 offsets in [−2, 2].
Models: LTH, Magnitude Pruning, Ballot's μ = 0 candidate and C16's choice (strongest admissible prefix, re-chosen from
each run's record). Prints the test metrics' paired differences (95% bootstrap CI, ``ballot_jax.stats``) of each
(model, variant) against raw LTH, raw Magnitude Pruning and raw C16, the bar cells each would meet (a cell: one
baseline, CWV and MCD both significantly lower, mean accuracy at least LTH's − 1 point; as
experiments.compare.bar_summary), and, for demographic groups, C16's mean offsets and per-group test accuracy change.

    PYTHONPATH=. python3 docs/results/scripts/session32_offsets_premise.py [--cache /work/runs/s32_logits]
"""
import argparse
import json
import pathlib

import numpy as np

from ballot_jax.methods.ballot import choose_within_epsilon
from ballot_jax.metrics import fairness_report
from ballot_jax.stats import bootstrap_ci

GRID = np.linspace(-2.0, 2.0, 41)


def group_metrics(pred, y, group, num_groups, num_classes):
    """The test metrics the records hold (``ballot_jax.metrics.fairness_report``), as floats."""
    report = fairness_report(y, pred, group, num_groups, num_classes)
    return {"accuracy": float(report["accuracy"]), "cwv": float(report["cwv"]), "mcd": float(report["mcd"]),
            "groups": np.asarray(report["per_group_accuracy"], np.float64)}


def best_threshold(margin, y):
    """The offset b maximising mean((margin + b > 0) == y); ties: the smallest |b|."""
    cuts = np.sort(margin)
    candidates = np.concatenate([[0.0], -(cuts[:-1] + cuts[1:]) / 2, [-cuts[0] + 1.0, -cuts[-1] - 1.0]])
    accs = np.array([np.mean((margin + b > 0) == y) for b in candidates])
    best = np.flatnonzero(accs == accs.max())
    return candidates[best[np.argmin(np.abs(candidates[best]))]]


def demographic_offsets(val_logits, y, group, num_groups, variant):
    margin = val_logits[:, 1] - val_logits[:, 0]
    offsets = np.zeros(num_groups)
    if variant == "none":
        return offsets
    accs = [np.mean((margin[group == g] > 0) == y[group == g]) for g in range(num_groups)]
    for g in range(num_groups) if variant == "own" else [int(np.argmin(accs))]:
        offsets[g] = best_threshold(margin[group == g], y[group == g])
    return offsets


def class_offsets(val_logits, y, num_classes, variant, epsilon):
    offsets = np.zeros(num_classes)
    if variant == "none":
        return offsets
    base = np.mean(val_logits.argmax(1) == y)

    def score(b):
        pred = (val_logits + b).argmax(1)
        acc = np.mean(pred == y)
        if variant == "own":
            return acc
        if acc < base - epsilon:
            return -np.inf
        return min(np.mean(pred[y == c] == c) for c in range(num_classes)) + 1e-6 * acc

    for _ in range(3):
        for c in range(num_classes):
            trials = []
            for v in GRID:
                b = offsets.copy()
                b[c] = v
                trials.append((score(b), -abs(v), v))
            offsets[c] = max(trials)[2]
    return offsets


def c16_choice(record):
    """C16's candidate of a run: the library's "strongest_prefix" rule on the record's validation search."""
    search = record["search"]
    return f"mu_{choose_within_epsilon(search, search['0']['accuracy'], record['epsilon_effective'], 'strongest_prefix')}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/work/runs/s32_logits")
    args = parser.parse_args()
    cache = pathlib.Path(args.cache)
    for name in ("big_nose", "cifar10"):
        data = np.load(cache / f"{name}.npz")
        records = json.loads((cache / f"{name}.records.json").read_text())
        yv, gv, yt, gt = (data[k] for k in ("val/y", "val/group", "test/y", "test/group"))
        classes_are_groups = bool(np.all(yv == gv)) and bool(np.all(yt == gt))
        num_groups = int(max(gv.max(), gt.max())) + 1
        for sparsity in ("0.8", "0.95"):
            runs = sorted((k.split("/")[0] for k in records if k.endswith(f"/{sparsity}")), key=int)
            table = {}  # (model, variant) -> {seed: metrics}
            offsets = {}  # variant -> C16's per-group offsets, one row a seed (demographic groups)
            for seed in runs:
                record = records[f"{seed}/{sparsity}"]
                for model in ("lth", "magnitude", "mu_0", "c16"):
                    key = c16_choice(record) if model == "c16" else model
                    zv, zt = data[f"val/{seed}/{sparsity}/{key}"], data[f"test/{seed}/{sparsity}/{key}"]
                    for variant in ("none", "own", "worst"):
                        if classes_are_groups:
                            b = class_offsets(zv, yv, zv.shape[1], variant, record["epsilon_effective"])
                            pred = (zt + b).argmax(1)
                        else:
                            b = demographic_offsets(zv, yv, gv, num_groups, variant)
                            pred = (zt[:, 1] - zt[:, 0] + b[gt] > 0).astype(int)
                        table.setdefault((model, variant), {})[seed] = group_metrics(pred, yt, gt, num_groups, zt.shape[1])
                        if model == "c16" and not classes_are_groups:
                            offsets.setdefault(variant, []).append(b)
            print(f"\n## {name} {float(sparsity):.0%} ({len(runs)} seeds): mean test metrics; paired differences "
                  "against raw LTH / raw Magnitude / raw C16 (95% bootstrap CI; * = excludes 0)")
            print("| model + offsets | accuracy | CWV | MCD | Δacc vs LTH (pts) | ΔCWV vs LTH | ΔMCD vs LTH | "
                  "ΔCWV vs Mag | ΔMCD vs Mag | ΔCWV vs C16 | Δacc vs C16 (pts) | bar cells |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for (model, variant), per_seed in table.items():
                def diff(metric, ref, scale=1.0):
                    d = [scale * (per_seed[s][metric] - table[(ref, "none")][s][metric]) for s in runs]
                    lo, hi = bootstrap_ci(d)
                    star = "*" if lo > 0 or hi < 0 else ""
                    return np.mean(d), lo, hi, f"{np.mean(d):+.5f}{star}" if scale == 1 else f"{np.mean(d):+.2f}{star}"
                acc_l = diff("accuracy", "lth", 100)
                cells = 0
                if acc_l[0] >= -1.0:
                    cells = sum(all(diff(m, ref)[2] < 0 for m in ("cwv", "mcd")) for ref in ("lth", "magnitude"))
                mean = {m: np.mean([per_seed[s][m] for s in runs]) for m in ("accuracy", "cwv", "mcd")}
                print(f"| {model} + {variant} | {100 * mean['accuracy']:.2f} | {mean['cwv']:.5f} | {mean['mcd']:.4f} | "
                      f"{acc_l[3]} | {diff('cwv', 'lth')[3]} | {diff('mcd', 'lth')[3]} | {diff('cwv', 'magnitude')[3]} | "
                      f"{diff('mcd', 'magnitude')[3]} | {diff('cwv', 'c16')[3]} | {diff('accuracy', 'c16', 100)[3]} | "
                      f"{cells} |", flush=True)
            for variant, rows in offsets.items():
                change = np.mean([table[("c16", variant)][s]["groups"] - table[("c16", "none")][s]["groups"]
                                  for s in runs], axis=0)
                print(f"C16 + {variant}: mean offset per group {np.round(np.mean(rows, axis=0), 2).tolist()}, "
                      f"test accuracy change per group (pts) {np.round(100 * change, 2).tolist()}")


if __name__ == "__main__":
    main()
