"""Session 40: session 33's premise reading (``session33_pruning_impact.py``: does pruning itself widen the groups'
gap?) on every CelebA target whose kept records hold the dense network of each seed, held-out targets included
(nothing trained, nothing chosen: a diagnosis of why the held-out bar is missed, read after every decision).

The records (docs/results/records) keep each seed's dense phase (method ``dense``), shared by Standard LTH (its level 0)
and Magnitude Pruning (pruned from it). Per seed and target sparsity: ticket − dense on the test split, paired over
seeds against 0 (95% percentile bootstrap CI of ``ballot_jax.stats``), for LTH's and Magnitude Pruning's tickets.
Big_Nose's LTH rows are session 33's, read from its workdirs then: equal rows check that records and workdirs agree.

    PYTHONPATH=.:docs/results/scripts python3 docs/results/scripts/session40_pruning_impact_records.py
"""
import json

from session33_pruning_impact import HEADER, row, ticket_minus_dense

R = "docs/results/records"
SETS = {  # target: (development or held out, its record files)
    "blond_hair": ("dev", ["session25_blond.json"]),
    "wavy_hair": ("dev", ["session25_wavy_s0_4.json", "session25_wavy_s5_9.json"]),
    "big_nose": ("dev", ["session29_Big_Nose.json"]),
    "young": ("held out", ["session25_young_s0_4.json", "session25_young_s5_9.json"]),
    "smiling": ("held out", ["session25_smiling_s0_4.json", "session25_smiling_s5_9.json"]),
    "attractive": ("held out", ["session25_attractive_s0_3.json", "session25_attractive_s4_9.json"]),
    "label_male": ("held out", ["session25_male_s0_4.json", "session25_male_s5_9.json"]),
}


def impact(files: list, method: str, sparsity: str) -> dict:
    """``{quantity: {seed: ticket − dense}}`` of ``method``'s tickets at ``sparsity`` in ``files``."""
    records = [r for f in files for r in json.load(open(f"{R}/{f}"))["records"]]
    dense = {r["seed"]: r for r in records if r["method"] == "dense"}
    out = {"accuracy": {}, "cwv": {}, "worst group": {}, "best group": {}}
    for r in records:
        if r["method"] == method and round(r["target_sparsity"] * 100) == int(sparsity):
            for key, value in ticket_minus_dense(dense[r["seed"]], r).items():
                out[key][r["seed"]] = value
    return out


def main() -> None:
    for method in ("lth", "magnitude"):
        print(f"\n{method}: ticket − dense of the same seed, mean [95% CI]; * the CI excludes 0")
        print(HEADER)
        for name, (kind, files) in SETS.items():
            for sparsity in ("80", "95"):
                print(row(f"{name} ({kind})", sparsity, impact(files, method, sparsity)))


if __name__ == "__main__":
    main()
