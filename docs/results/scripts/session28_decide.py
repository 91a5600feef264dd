"""Session 28's pre-registered decision of C15 (docs/results/scripts/session28_preregistration.md): session 11's rule
(``session11_decide.judge``/``verdict``: (i) CWV significantly lower than the default's in a row; none of (ii)
CWV or MCD significantly higher, (iii) accuracy significantly lower, (iv) newly more than 1 point below LTH), the
default C12 and LTH read from the kept records, C15 from docs/results/records/session28_<SET>_polish.json. The bar
cells (vs LTH and Magnitude Pruning) are printed beside it, not deciding.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session28_decide.py [SET ...]   (default: blond wavy)
"""
import glob
import sys

from experiments import compare, reports
from session11_decide import judge, verdict
from session14_decide import met_cells

R = "docs/results/records"


def sources(name: str) -> dict:
    """{label: [experiments.compare sources]}: lth, magnitude, default (C12) and c15 of one development target."""
    old = sorted(glob.glob(f"{R}/session25_{name}*.json"))
    if not old:
        raise SystemExit(f"no kept records for {name}: {R}/session25_{name}*.json")
    new = f"{R}/session28_{name}_polish.json"
    return {"lth": [f"{p}:lth" for p in old], "magnitude": [f"{p}:magnitude" for p in old],
            "default": [f"{p}:c12" for p in old], "c15": [f"{new}:c15"]}


def main(sets):
    better_rows, failures, cells = [], [], {"default": 0, "c15": 0}
    for name in sets:
        src = sources(name)
        judge(name, compare.collect([f"{k}={s}" for k in ("lth", "default", "c15") for s in src[k]]),
              "c15", better_rows, failures)
        for label in ("default", "c15"):
            records = compare.collect([f"{k}={s}" for k in ("lth", "magnitude") for s in src[k]]
                                      + [f"ballot={s}" for s in src[label]])
            cells[label] += met_cells(reports.paired_comparisons(records, against=["ballot"]))
    print(f"bar cells (vs LTH and Magnitude; not deciding): c15 {cells['c15']}, default {cells['default']} "
          f"(of {4 * len(sets)})")
    verdict("c15", better_rows, failures)


if __name__ == "__main__":
    main(sys.argv[1:] or ["blond", "wavy"])
