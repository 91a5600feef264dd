"""Session 21's pre-registered decision of C13 (docs/results/scripts/session21_preregistration.md): R14 as in
session15_decide.decide, with the current default C12 read from /work/runs/s15_<SET>__c12.

    PYTHONPATH=/work/main python docs/results/scripts/session21_decide.py VARIANT [SET ...] [--held-out]
"""
import pathlib
import sys

from session15_decide import DECISION_SETS, decide


def specs(name: str, variant: str) -> tuple[str, str, str, str]:
    """(lth, magnitude, C12, variant) sources in the set's workdirs."""
    base = pathlib.Path(f"/work/runs/s15_{name}")
    return f"{base}:lth", f"{base}:magnitude", f"{base}__c12:ballot", f"{base}__{variant}:ballot"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--held-out"]
    decide(args[0], args[1:] or list(DECISION_SETS), specs=specs, held_out="--held-out" in sys.argv)
