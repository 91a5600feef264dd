"""Session 14's pre-registered decision rule R14 (docs/results/scripts/session14_preregistration.md).

    PYTHONPATH=. python docs/results/scripts/session14_decide.py VARIANT [SET ...] [--held-out]

Session 11's rule (session11_decide.py) without its criterion (iii), "accuracy not significantly lower
than the default's in any row", and with (v): at least as many of the development bar cells (issue #13's
bar against LTH and Magnitude Pruning, `experiments.compare.bar_summary`) as the default. Reads
/work/runs/s11_<SET> (lth, magnitude, the default ballot) and /work/runs/s12_<SET>__<VARIANT>.
``--held-out``: the same comparisons on held-out sets, reported only (no verdict: nothing is decided there)."""
import sys

from experiments import compare, reports
from session11_decide import judge


def met_cells(paired) -> int:
    """The bar cells met (against LTH and Magnitude Pruning) in paired comparisons of the method judged."""
    return sum(line.count("| met") for line in compare.bar_summary(paired, ["lth", "magnitude"]))


def bar_cells(base: str, candidate: str) -> int:
    return bar_cells_of(f"{base}:lth", f"{base}:magnitude", candidate)


def bar_cells_of(lth: str, magnitude: str, candidate: str) -> int:
    """The bar cells ``candidate`` meets against ``lth`` and ``magnitude`` (``experiments.compare`` sources)."""
    records = compare.collect([f"lth={lth}", f"magnitude={magnitude}", f"ballot={candidate}"])
    return met_cells(reports.paired_comparisons(records, against=["ballot"]))


if __name__ == "__main__":
    args = sys.argv[1:]
    held_out = "--held-out" in args
    args = [a for a in args if a != "--held-out"]
    variant, sets = args[0], args[1:] or ["blond", "wavy", "cifar10"]
    better_rows, failures, cells = [], [], {"default": 0, variant: 0}
    for name in sets:
        base = f"/work/runs/s11_{name}"
        copy = f"/work/runs/s12_{name}__{variant}"
        judge(name, compare.collect([f"lth={base}:lth", f"default={base}:ballot", f"{variant}={copy}:ballot"]),
              variant, better_rows, failures)
        for label, candidate in (("default", f"{base}:ballot"), (variant, f"{copy}:ballot")):
            cells[label] += bar_cells(base, candidate)
    if held_out:
        print(f"rows with CWV significantly lower than the previous default's: {len(better_rows)} {better_rows}")
        print(f"rows significantly less fair (ii), less accurate (iii), or newly > 1 point below LTH (iv): {failures or 'none'}")
        print(f"bar cells: {variant} {cells[variant]}, previous default {cells['default']} (of {4 * len(sets)})")
        sys.exit(0)
    kept = [f for f in failures if not f.startswith("(iii)")]
    print(f"(i) rows with CWV significantly lower than the default's: {len(better_rows)} {better_rows}")
    print(f"session 11's (iii), not part of R14: {[f for f in failures if f.startswith('(iii)')] or 'none'}")
    print(f"failures of (ii), (iv): {kept or 'none'}")
    print(f"(v) development bar cells: {variant} {cells[variant]}, default {cells['default']}")
    passed = better_rows and not kept and cells[variant] >= cells["default"]
    print(f"VERDICT {variant} (R14): {'PASS' if passed else 'FAIL'}")
