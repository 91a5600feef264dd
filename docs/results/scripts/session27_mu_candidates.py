"""Session 27: where C12's accuracy goes on a run, read from one workdir's μ candidates (nothing trained, nothing
chosen). For every seed and sparsity: the mode C12 chose, its μ candidates' validation accuracy (what the ε rule saw)
and the test accuracy and CWV of each candidate's final level, beside LTH and Magnitude Pruning of the same seed; then
paired differences over seeds (ballot_jax.stats, 95% percentile bootstrap) of the chosen ticket and of the μ = 0
candidate against LTH, and of the chosen ticket's validation and test accuracy drop from the μ = 0 candidate.
    PYTHONPATH=. python docs/results/scripts/session27_mu_candidates.py WORKDIR [--out FILE.md]
"""
import argparse
import glob
import json
import os

import numpy as np

from ballot_jax import stats


def _load(path):
    with open(path) as f:
        return json.load(f)


def _final_level(run_dir):
    levels = sorted(glob.glob(os.path.join(run_dir, "level_*", "record.json")))
    if not levels:
        raise FileNotFoundError(f"no level record under {run_dir}: is the run finished?")
    return _load(levels[-1])


def _ci(a, b, higher=True):
    c = stats.paired_comparison(a, b, higher_is_better=higher)
    verdict = "significant" if c.significant else "not significant"
    return f"{c.mean_difference:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}] ({verdict})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    seeds = sorted(int(p.rsplit("_", 1)[1]) for p in glob.glob(os.path.join(args.workdir, "seed_*")))
    sparsities = sorted({p.rsplit("_", 1)[1] for p in glob.glob(os.path.join(args.workdir, "seed_*", "sparsity_*"))},
                        key=float)
    lines = [f"# C12's μ candidates, {args.workdir} (seeds {seeds})", "",
             "Test accuracy (%) / CWV of each μ candidate's final level in the mode C12 chose; val = the candidates' "
             "validation accuracy that the ε rule read; * = the chosen μ.", ""]
    for sp in sparsities:
        lines += [f"## Sparsity {sp}", "", "| Seed | Mode | ε (pp) | LTH | Magnitude | μ = 0 | μ = 0.3 | μ = 1 | μ = 3 | val μ = 0 / 0.3 / 1 / 3 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        per = {k: {} for k in ("lth", "mu0", "chosen", "val_drop", "test_drop")}
        for s in seeds:
            base = os.path.join(args.workdir, f"seed_{s}", f"sparsity_{sp}")
            lth = _load(os.path.join(base, "lth.record.json"))["test"]
            mag = _load(os.path.join(base, "magnitude.record.json"))["test"]
            ballot = _load(os.path.join(base, "ballot.record.json"))
            mode, chosen = ballot["mode"], ballot["run_dir"].rsplit("mu_", 1)[1]
            cells = {}
            for mu in ballot["search"]:
                test = _final_level(os.path.join(base, "ballot", mode, f"mu_{mu}"))["test"]
                cells[mu] = test
            row = " | ".join(f"{100 * cells[mu]['accuracy']:.2f} / {cells[mu]['cwv']:.5f}{'*' if mu == chosen else ''}"
                             for mu in ("0", "0.3", "1", "3"))
            val = " / ".join(f"{100 * ballot['search'][mu]['accuracy']:.2f}" for mu in ("0", "0.3", "1", "3"))
            lines.append(f"| {s} | {mode} | {100 * ballot['epsilon_effective']:.2f} | {100 * lth['accuracy']:.2f} / "
                         f"{lth['cwv']:.5f} | {100 * mag['accuracy']:.2f} / {mag['cwv']:.5f} | {row} | {val} |")
            per["lth"][s] = 100 * lth["accuracy"]
            per["mu0"][s] = 100 * cells["0"]["accuracy"]
            per["chosen"][s] = 100 * ballot["test"]["accuracy"]
            per["val_drop"][s] = 100 * (ballot["search"][chosen]["accuracy"] - ballot["search"]["0"]["accuracy"])
            per["test_drop"][s] = per["chosen"][s] - per["mu0"][s]
        lines += ["", "Paired over seeds, accuracy in points (mean [95% CI]):",
                  f"- the μ = 0 candidate − LTH: {_ci(per['mu0'], per['lth'])}",
                  f"- the chosen ticket − LTH: {_ci(per['chosen'], per['lth'])}",
                  f"- the chosen μ's drop from μ = 0, validation: {_ci(per['val_drop'], {s: 0.0 for s in seeds})}; "
                  f"test: {_ci(per['test_drop'], {s: 0.0 for s in seeds})}", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
