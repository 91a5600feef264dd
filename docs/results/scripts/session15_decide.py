"""Session 15's pre-registered decision (docs/results/scripts/session15_preregistration.md): session 14's
rule R14 on session 15's workdirs and four development sets.

    PYTHONPATH=. python docs/results/scripts/session15_decide.py VARIANT [SET ...] [--held-out]

Reads /work/runs/s15_<SET> (lth, magnitude, the default ballot) and /work/runs/s15_<SET>__<VARIANT>
(default sets: the decision's, blond cifar10 digits_lt10; a verdict only when all three are read), or, where those workdirs are gone, the records kept in
docs/results/records/session15_<SET>.json (labels lth, magnitude, ballot, VARIANT; written by
``experiments.compare --export``). ``--held-out``: the same comparisons, reported only."""
import pathlib
import sys

from experiments import compare
from session11_decide import judge
from session14_decide import bar_cells_of

DECISION_SETS = ("blond", "cifar10", "digits_lt10")  # the amendment of the pre-registration
KEPT = pathlib.Path(__file__).resolve().parents[1] / "records"


def specs(name: str, variant: str) -> tuple[str, str, str, str]:
    """(lth, magnitude, default ballot, variant) as ``experiments.compare`` sources: the workdirs when
    they exist, else the set's kept records."""
    base, copy = pathlib.Path(f"/work/runs/s15_{name}"), pathlib.Path(f"/work/runs/s15_{name}__{variant}")
    if base.is_dir() and copy.is_dir():
        return f"{base}:lth", f"{base}:magnitude", f"{base}:ballot", f"{copy}:ballot"
    kept = KEPT / f"session15_{name}.json"
    return f"{kept}:lth", f"{kept}:magnitude", f"{kept}:ballot", f"{kept}:{variant}"


def decide(variant: str, sets: list, specs=specs, held_out: bool = False) -> None:
    """Print R14's criteria for ``variant`` over ``sets`` (``specs(name, variant)``: the lth, magnitude,
    default and variant sources) and, unless ``held_out`` or a decision set is missing, the verdict."""
    better_rows, failures, cells = [], [], {"default": 0, variant: 0}
    for name in sets:
        lth, magnitude, default, candidate = specs(name, variant)
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
    if missing and not held_out:
        print(f"PARTIAL: no verdict; the pre-registered decision also needs {' '.join(missing)}")
    elif not held_out:
        passed = better_rows and not kept and cells[variant] >= cells["default"]
        print(f"VERDICT {variant} (R14): {'PASS' if passed else 'FAIL'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    held_out = "--held-out" in args
    args = [a for a in args if a != "--held-out"]
    decide(args[0], args[1:] or list(DECISION_SETS), held_out=held_out)
