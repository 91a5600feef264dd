"""Session 15's pre-registered decision (docs/results/scripts/session15_preregistration.md): session 14's
rule R14 on session 15's workdirs and four development sets.

    PYTHONPATH=. python docs/results/scripts/session15_decide.py VARIANT [SET ...] [--held-out]

Reads /work/runs/s15_<SET> (lth, magnitude, the default ballot) and /work/runs/s15_<SET>__<VARIANT>
(default sets: blond wavy cifar10 digits_lt10). ``--held-out``: the same comparisons, reported only."""
import sys

from experiments import compare
from session11_decide import judge
from session14_decide import bar_cells

if __name__ == "__main__":
    args = sys.argv[1:]
    held_out = "--held-out" in args
    args = [a for a in args if a != "--held-out"]
    variant, sets = args[0], args[1:] or ["blond", "wavy", "cifar10", "digits_lt10"]
    better_rows, failures, cells = [], [], {"default": 0, variant: 0}
    for name in sets:
        base, copy = f"/work/runs/s15_{name}", f"/work/runs/s15_{name}__{variant}"
        judge(name, compare.collect([f"lth={base}:lth", f"default={base}:ballot", f"{variant}={copy}:ballot"]),
              variant, better_rows, failures)
        for label, candidate in (("default", f"{base}:ballot"), (variant, f"{copy}:ballot")):
            cells[label] += bar_cells(base, candidate)
    kept = [f for f in failures if not f.startswith("(iii)")]
    print(f"(i) rows with CWV significantly lower than the default's: {len(better_rows)} {better_rows}")
    print(f"less accurate than the default (session 11's (iii), not part of R14): "
          f"{[f for f in failures if f.startswith('(iii)')] or 'none'}")
    print(f"(ii) significantly less fair, (iv) newly > 1 point below LTH: {kept or 'none'}")
    print(f"(v) bar cells (vs LTH and Magnitude): {variant} {cells[variant]}, default {cells['default']} "
          f"(of {4 * len(sets)})")
    if not held_out:
        passed = better_rows and not kept and cells[variant] >= cells["default"]
        print(f"VERDICT {variant} (R14): {'PASS' if passed else 'FAIL'}")
