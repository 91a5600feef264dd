"""What Ballot's μ search traded, seed by seed, and how far any choice among its candidates could go.

    python -m experiments.mu_frontier --workdir runs/young --baseline lth --baseline magnitude \
        [--method ballot] [--tolerance 1.0] [--out report.md]

A finished Ballot run keeps every candidate it trained (``<method>/<mode>/mu_<μ>/level_NN``). This
reads them back, nothing retrained, and writes:

- **per seed**: the mode the run chose and, for each μ of that mode, the validation accuracy (and
  its difference from the μ = 0 candidate's, what the ε rule compares) and CWV, the test accuracy and its
  difference from the accuracy reference's (the first ``--baseline``, Standard LTH), the test CWV
  and MCD; the chosen μ is marked;
- **rows for the paired comparisons** (``experiments.reports``, the bar of ``compare.bar_summary``):
  ``<method>@mu=<μ>`` (every seed at that μ in its chosen mode) and ``<method>@test_oracle``: per
  seed, of every candidate trained (both modes), the one with the lowest *test* CWV among those
  whose test accuracy is at least the accuracy reference's minus ``--tolerance`` points (none: the
  most accurate). The oracle reads the test split, so it is a diagnosis, never a choice, and an
  optimistic one: the lowest of several measured test CWVs also selects the split's noise. A cell
  the oracle misses is out of reach of any choice among these candidates; one it meets is at most
  within reach.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Sequence

from experiments import compare, reports

Record = dict[str, Any]


def candidate_dirs(workdir: pathlib.Path, record: Record, method: str) -> dict[tuple[str, str], pathlib.Path]:
    """``{(mode, μ): candidate run dir}`` of every candidate ``record``'s run trained (``mode`` is
    "" for a run with a fixed mode: its candidates sit directly in the method's directory)."""
    root = workdir / f"seed_{record['seed']}" / f"sparsity_{record['target_sparsity']:g}" / method
    found = {}
    for path in sorted(root.glob("**/mu_*")):
        mode = str(path.parent.relative_to(root))
        found[("" if mode == "." else mode, path.name.removeprefix("mu_"))] = path
    return found


def frontier(workdir: pathlib.Path, method: str, reference: Sequence[Record], tolerance_pp: float):
    """(table rows, records): one row per (sparsity, seed, candidate) of ``method``'s runs, and the
    fixed-μ and test-oracle records (see the module docstring). ``reference``: the accuracy
    reference's records (one per seed and sparsity)."""
    ref = {(r["seed"], float(r["target_sparsity"])): r["test"]["accuracy"] for r in reference}
    rows, out = [], []
    runs = sorted(compare.load_records(workdir, method), key=lambda r: (r["target_sparsity"], r["seed"]))
    if not runs:
        raise ValueError(f"no finished {method!r} records under {workdir}")
    for record in runs:
        key = (record["seed"], float(record["target_sparsity"]))
        if "search" not in record:
            raise ValueError(f"{method!r} of seed {key[0]} at sparsity {key[1]:g} in {workdir} ran no μ search "
                             "(a fixed μ): there are no candidates to read; run it with disparity_weights")
        if key not in ref:
            raise ValueError(f"the accuracy reference has no record of seed {key[0]} at sparsity {key[1]:g}")
        candidates = {k: c for k, p in candidate_dirs(workdir, record, method).items()
                      if (c := compare.candidate_record(p)) is not None}
        mode = record.get("mode", "")
        chosen_mu = f"{record['disparity_weight']:g}"
        first = next(iter(record["search"]))
        for (m, mu), c in candidates.items():
            if m != mode:
                continue
            rows.append({
                "sparsity": key[1], "seed": key[0], "mode": m or "fixed", "mu": mu, "chosen": mu == chosen_mu,
                "val_accuracy": c["val"]["accuracy"],
                "val_vs_first_pp": 100 * (c["val"]["accuracy"] - record["search"][first]["accuracy"]),
                "val_cwv": c["val"]["cwv"],
                "test_accuracy": c["test"]["accuracy"],
                "test_vs_reference_pp": 100 * (c["test"]["accuracy"] - ref[key]),
                "cwv": c["test"]["cwv"], "mcd": c["test"]["mcd"],
            })
            out.append({**c, "method": f"{method}@mu={mu}"})
        floor = ref[key] - (tolerance_pp + compare.FLOAT32_SLACK_PP) / 100  # inclusive, as the bar
        accurate = [c for c in candidates.values() if c["test"]["accuracy"] >= floor]
        best = (min(accurate, key=lambda c: c["test"]["cwv"]) if accurate
                else max(candidates.values(), key=lambda c: c["test"]["accuracy"]))
        out.append({**best, "method": f"{method}@test_oracle"})
    return rows, out


def rows_markdown(rows: Sequence[dict[str, Any]], reference: str) -> list[str]:
    """The per-seed table (lines)."""
    lines = ["| Sparsity | Seed | Mode | μ | Val acc (%) | Val Δ vs μ=0 (pp) | Val CWV | Test acc (%) | "
             f"Test Δ vs {reference} (pp) | CWV | MCD |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mu = f"**{r['mu']}** (chosen)" if r["chosen"] else r["mu"]
        lines.append(f"| {r['sparsity']:g} | {r['seed']} | {r['mode']} | {mu} | {100 * r['val_accuracy']:.2f} | "
                     f"{r['val_vs_first_pp']:+.2f} | {r['val_cwv']:.5f} | {100 * r['test_accuracy']:.2f} | {r['test_vs_reference_pp']:+.2f} | "
                     f"{r['cwv']:.5f} | {r['mcd']:.4f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path, help="a finished experiment's workdir")
    parser.add_argument("--method", default="ballot", help="the method whose μ search is read (default ballot)")
    parser.add_argument("--baseline", action="append", required=True,
                        help="a baseline method in the same workdir (repeatable); the first is the accuracy reference")
    parser.add_argument("--tolerance", type=float, default=1.0, help="accuracy tolerance of the oracle and the bar, points")
    parser.add_argument("--out", default="", help="also write the report here")
    args = parser.parse_args(argv)
    baselines = compare.collect([f"{b}={args.workdir}:{b}" for b in args.baseline])
    reference = [r for r in baselines if r["method"] == args.baseline[0]]
    rows, variants = frontier(args.workdir, args.method, reference, args.tolerance)
    chosen = [{**r, "method": args.method} for r in compare.load_records(args.workdir, args.method)]
    records = baselines + chosen + variants
    against = list(dict.fromkeys(r["method"] for r in chosen + variants))
    paired = reports.paired_comparisons(records, against=against, reference=args.method)
    text = "\n".join([
        f"# The μ search of {args.method} in {args.workdir}", "",
        __doc__.split("\n\n", 2)[2].strip(), "",
        "## Every candidate, per seed (test split unless marked val)", "",
        *rows_markdown(rows, args.baseline[0]), "",
        *compare.verdict_summary([e for e in paired if e["baseline"] in args.baseline]), "",
        *compare.bar_summary(paired, args.baseline, args.tolerance),
    ]) + "\n"
    return compare.emit(text, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
