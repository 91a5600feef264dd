"""Session 22's pre-registered decision of C14 (docs/results/scripts/session22_preregistration.md): R14 as in
session15_decide.decide, C12 and C14 read from docs/results/records/session22_soup_<SET>.json
(session22_soup.py), LTH and Magnitude Pruning from /work/runs/s15_<SET>.

    PYTHONPATH=/work/main python docs/results/scripts/session22_decide.py c14 [SET ...] [--held-out]
"""
import pathlib
import sys

from session15_decide import DECISION_SETS, KEPT, decide


def specs(name: str, variant: str) -> tuple[str, str, str, str]:
    """(lth, magnitude, C12, variant) sources."""
    base, soup = pathlib.Path(f"/work/runs/s15_{name}"), KEPT / f"session22_soup_{name}.json"
    return f"{base}:lth", f"{base}:magnitude", f"{soup}:c12", f"{soup}:{variant}"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--held-out"]
    decide(args[0], args[1:] or list(DECISION_SETS), specs=specs, held_out="--held-out" in sys.argv)
