"""Session 13's diagnosis: does a retrained variant's candidate buy more fairness per point of accuracy
than the default's candidate at the same μ? (Development sets; reads the test split; chooses nothing.)

    PYTHONPATH=. python docs/results/scripts/session13_candidates.py VARIANT [SET ...]   # default: blond wavy cifar10

Reads /work/runs/s11_<SET> (the default) and /work/runs/s12_<SET>__<VARIANT> (its μ > 0 candidates
retrained by session12_retrain.sh). For every (sparsity, mode, μ > 0) that both trained on the same
seeds (a run trains μ > 0 only in the mode it chose), prints each method's mean test accuracy change
and CWV change from the run's own μ = 0 candidate, and the variant's paired differences from the
default's candidate (test accuracy in points, CWV), with the 95% bootstrap CI over those seeds."""
import pathlib
import sys

import numpy as np

from ballot_jax.stats import paired_comparison
from experiments import compare, mu_frontier

SEEDS = range(5)


def candidates(workdir: pathlib.Path, seed: int, sparsity: str):
    """{(mode, μ): (test accuracy, test CWV)} of every finished candidate of one run."""
    dirs = mu_frontier.candidate_dirs(workdir, {"seed": seed, "target_sparsity": float(sparsity)}, "ballot")
    records = {key: compare.candidate_record(path) for key, path in dirs.items()}
    return {key: (r["test"]["accuracy"], r["test"]["cwv"]) for key, r in records.items() if r is not None}


def ci(comparison, scale=1.0, digits=5):
    return (f"{comparison.mean_difference * scale:+.{digits}f} [{comparison.ci_low * scale:+.{digits}f}, "
            f"{comparison.ci_high * scale:+.{digits}f}]{' *' if comparison.significant else ''}")


def main(variant: str, sets: list[str]) -> None:
    print("| Set, sparsity | mode, μ | seeds | default: Δacc / ΔCWV from μ = 0 | variant: Δacc / ΔCWV from μ = 0 "
          "| variant − default: test acc (points) | CWV |")
    print("|---|---|---|---|---|---|---|")
    for name in sets:
        base, other = pathlib.Path(f"/work/runs/s11_{name}"), pathlib.Path(f"/work/runs/s12_{name}__{variant}")
        for sparsity in ("0.8", "0.95"):
            per_seed = {s: (candidates(base, s, sparsity), candidates(other, s, sparsity)) for s in SEEDS}
            keys = sorted({k for d, v in per_seed.values() for k in d if k[1] != "0" and k in v})
            for mode, mu in keys:
                seeds = [s for s, (d, v) in per_seed.items() if (mode, mu) in d and (mode, mu) in v]
                if len(seeds) < 2:
                    continue
                d = {s: per_seed[s][0] for s in seeds}
                v = {s: per_seed[s][1] for s in seeds}

                def change(c, s, i):
                    return c[s][(mode, mu)][i] - c[s][(mode, "0")][i]

                shift = [f"{np.mean([change(c, s, 0) for s in seeds]) * 100:+.2f} / "
                         f"{np.mean([change(c, s, 1) for s in seeds]):+.5f}" for c in (d, v)]
                acc = paired_comparison({s: v[s][(mode, mu)][0] for s in seeds}, {s: d[s][(mode, mu)][0] for s in seeds},
                                        higher_is_better=True)
                cwv = paired_comparison({s: v[s][(mode, mu)][1] for s in seeds}, {s: d[s][(mode, mu)][1] for s in seeds})
                print(f"| {name} {float(sparsity):.0%} | {mode}, {mu} | {len(seeds)} | {shift[0]} | {shift[1]} "
                      f"| {ci(acc, 100, 2)} | {ci(cwv)} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["blond", "wavy", "cifar10"])
