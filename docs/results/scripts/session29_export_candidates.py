"""Session 29: every Ballot candidate's validation and test metrics from workdirs, into one small JSON file, so that a
re-choice among the trained candidates (C16, session29_preregistration.md) can be decided after the workdirs are gone.
Per run (seed, sparsity): each mode's μ = 0 candidate and, in the mode the run chose, every μ candidate; the metrics are
those of the candidate's last finished level (its record.json). A run with one fixed mode (no ``pruning="auto"``, its
candidates directly under ``ballot/``) gives mode "fixed".
    python docs/results/scripts/session29_export_candidates.py OUT.json GLOB [GLOB ...]
"""
import glob
import json
import pathlib
import sys


def main() -> None:
    out, patterns = sys.argv[1], sys.argv[2:]
    rows = []
    for root in sorted(pathlib.Path(p) for pattern in patterns for p in glob.glob(pattern)):
        for base in sorted(root.glob("seed_*/sparsity_*/ballot")):
            fixed = any(p.name.startswith("mu_") for p in base.iterdir())
            for mode in [base] if fixed else sorted(p for p in base.iterdir() if p.is_dir()):
                for cand in sorted(p for p in mode.iterdir() if p.name.startswith("mu_")):
                    levels = sorted(p for p in cand.iterdir() if (p / "record.json").exists())
                    if not levels:
                        continue
                    record = json.loads((levels[-1] / "record.json").read_text())
                    rows.append({"seed": int(base.parent.parent.name.removeprefix("seed_")),
                                 "target_sparsity": float(base.parent.name.removeprefix("sparsity_")),
                                 "mode": "fixed" if fixed else mode.name, "mu": cand.name.removeprefix("mu_"), "level": levels[-1].name,
                                 "val": record["val"], "test": record["test"]})
    pathlib.Path(out).write_text(json.dumps({"source": " ".join(sys.argv[2:]), "candidates": rows}) + "\n")
    print(f"{len(rows)} candidates -> {out}")


if __name__ == "__main__":
    main()
