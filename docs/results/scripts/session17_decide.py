"""Session 17's pre-registered decision of C10 (docs/results/scripts/session18_preregistration.md): R14 on
the three development sets of session 15's amendment, against the current default (session 16's,
adversary_balance="groups"), whose records are in the copies /work/runs/s15_<SET>__c9.

    PYTHONPATH=/work/main python docs/results/scripts/session17_decide.py VARIANT [SET ...]

Reads LTH and Magnitude from /work/runs/s15_<SET>, the default from /work/runs/s15_<SET>__c9 and the
variant from /work/runs/s15_<SET>__<VARIANT> (made by session17_rechoose.sh); a verdict only when all
three sets are read."""
import sys

from session15_decide import DECISION_SETS, decide


def specs(name: str, variant: str) -> tuple[str, str, str, str]:
    """LTH and Magnitude from /work/runs/s15_<SET>, the session-16 default from its ``__c9`` copy, the variant
    from its ``__<VARIANT>`` copy."""
    base = f"/work/runs/s15_{name}"
    return f"{base}:lth", f"{base}:magnitude", f"{base}__c9:ballot", f"{base}__{variant}:ballot"


if __name__ == "__main__":
    decide(sys.argv[1], sys.argv[2:] or list(DECISION_SETS), specs)
