"""Session 17's pre-registered decision of C10 (docs/results/scripts/session18_preregistration.md): R14 on
the three development sets of session 15's amendment, against the current default (session 16's,
adversary_balance="groups"), whose records are in the copies /work/runs/s15_<SET>__c9.

    PYTHONPATH=/work/main python docs/results/scripts/session17_decide.py VARIANT [SET ...]

Reads LTH and Magnitude from /work/runs/s15_<SET>, the default from /work/runs/s15_<SET>__c9 and the
variant from /work/runs/s15_<SET>__<VARIANT> (made by session17_rechoose.sh); a verdict only when all
three sets are read."""
import sys

from experiments import compare
from session11_decide import judge
from session14_decide import bar_cells_of
from session15_decide import DECISION_SETS

if __name__ == "__main__":
    variant, sets = sys.argv[1], sys.argv[2:] or list(DECISION_SETS)
    better_rows, failures, cells = [], [], {"default": 0, variant: 0}
    for name in sets:
        base = f"/work/runs/s15_{name}"
        lth, magnitude = f"{base}:lth", f"{base}:magnitude"
        default, candidate = f"{base}__c9:ballot", f"{base}__{variant}:ballot"
        judge(name, compare.collect([f"lth={lth}", f"default={default}", f"{variant}={candidate}"]),
              variant, better_rows, failures)
        for label, ballot in (("default", default), (variant, candidate)):
            cells[label] += bar_cells_of(lth, magnitude, ballot)
    kept = [f for f in failures if not f.startswith("(iii)")]
    print(f"(i) rows with CWV significantly lower than the default's: {len(better_rows)} {better_rows}")
    print(f"less accurate than the default (session 11's (iii), not part of R14): "
          f"{[f for f in failures if f.startswith('(iii)')] or 'none'}")
    print(f"(ii) significantly less fair, (iv) newly > 1 point below LTH: {kept or 'none'}")
    print(f"(v) bar cells (vs LTH and Magnitude): {variant} {cells[variant]}, default {cells['default']} "
          f"(of {4 * len(sets)})")
    missing = [name for name in DECISION_SETS if name not in sets]
    if missing:
        print(f"PARTIAL: no verdict; the pre-registered decision also needs {' '.join(missing)}")
    else:
        passed = better_rows and not kept and cells[variant] >= cells["default"]
        print(f"VERDICT {variant} (R14): {'PASS' if passed else 'FAIL'}")
