r"""Group fairness metrics (jit-able, fairlearn-style names).

A *group* is an int id per example in ``[0, num_groups)``; ``num_groups`` and ``num_classes`` are
static Python ints. Every metric derives from the per-group confusion tensor

    conf[g, t, p] = #{examples i : groups[i] = g, y_true[i] = t, y_pred[i] = p}     int32 [G, C, C]

which is additive over evaluation batches: ``group_confusion(whole) == group_confusion(part_1) +
group_confusion(part_2)``, so an eval loop can sum it on device and compute the metrics once.

Formulas (G groups, C classes)::

    n_g        = sum_{t,p} conf[g, t, p]                        examples in group g
    present_g  = n_g > 0                                          P = {g : present_g}
    a_g        = sum_t conf[g, t, t] / n_g   (0 if n_g = 0)       per-group accuracy
    accuracy   = sum_g sum_t conf[g, t, t] / sum_g n_g   (0 if there are no examples)
    cwv        = (1/|P|) sum_{g in P} (a_g - mean_{h in P} a_h)^2     population variance (ddof=0)
    cwv_overall = (1/|P|) sum_{g in P} (a_g - accuracy)^2             the Ballot authors' CWV: the
                  deviation from the OVERALL accuracy, not from the mean group accuracy; it equals
                  cwv + (mean_{P} a_g - accuracy)^2, so cwv_overall >= cwv, with equality when
                  the overall accuracy is the mean group accuracy (e.g. equally large groups)
    mcd        = max_{g in P} a_g - min_{g in P} a_g
    worst_group_accuracy = min_{g in P} a_g
    num_empty_groups     = G - |P|

Binary targets only (C == 2, decided statically from the shape; label 1 is the positive class)::

    sel_g = (conf[g,0,1] + conf[g,1,1]) / n_g                       over P     selection rate P(pred=1|g)
    TPR_g = conf[g,1,1] / (conf[g,1,0] + conf[g,1,1])               over P+ = {g : group has a positive}
    FPR_g = conf[g,0,1] / (conf[g,0,0] + conf[g,0,1])               over P- = {g : group has a negative}
    demographic_parity_difference = max_{P} sel_g - min_{P} sel_g
    equal_opportunity_difference  = max_{P+} TPR_g - min_{P+} TPR_g
    equalized_odds_difference     = max(equal_opportunity_difference, max_{P-} FPR_g - min_{P-} FPR_g)
                                    (fairlearn's default ``agg="worst_case"``)

Groups that do not qualify (no examples; no positives for TPR; no negatives for FPR) are EXCLUDED,
never NaN. When no group qualifies, a max-min difference, ``cwv``, ``cwv_overall`` and
``worst_group_accuracy`` are 0.
(fairlearn instead assigns a rate of 0 to a group without positives/negatives; we exclude it.)

Validation: mismatched shapes of ``y_true`` / ``y_pred`` / ``groups`` and non-integer dtypes raise
``ValueError`` also under ``jax.jit`` (shapes and dtypes are static). When the arrays are concrete
(not ``jax.core.Tracer``), group ids outside ``[0, num_groups)`` and labels outside
``[0, num_classes)`` raise ``ValueError``. Under ``jax.jit`` values cannot be checked: such examples
are silently dropped from the confusion tensor (and from ``accuracy_by_group`` for bad group ids).
Checking concrete device arrays copies them to the host, so call these inside a jitted step in hot
loops. Float inputs are accepted only when concrete and whole-valued (e.g. ``0.0``/``1.0``).

Modules: the checks ``metrics_inputs``; confusion, per-group accuracy, CWV, MCD, worst group
``metrics_accuracy``; DP / EO / EOD ``metrics_rates``; the scalar metrics of a confusion tensor and
the report here. Every name is importable from ``ballot_jax.metrics``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ballot_jax.metrics_accuracy import (
    GroupAccuracy,
    _group_accuracy,
    _masked_min,
    _masked_range,
    _masked_sq_dev,
    _masked_var,
    _overall_accuracy,
    accuracy_by_group,
    accuracy_from_confusion,
    group_confusion,
    group_wise_variance,
    group_wise_variance_overall,
    max_group_discrepancy,
    worst_group_accuracy,
)
from ballot_jax.metrics_inputs import ArrayLike, _check_conf
from ballot_jax.metrics_rates import (
    _binary_parts,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)

__all__ = [
    "GroupAccuracy",
    "group_confusion",
    "accuracy_from_confusion",
    "metrics_from_confusion",
    "accuracy_by_group",
    "group_wise_variance",
    "group_wise_variance_overall",
    "max_group_discrepancy",
    "worst_group_accuracy",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_report",
    "fairness_improvement",
]


@jax.jit
def _metrics_impl(conf: jax.Array) -> dict:
    conf = conf.astype(jnp.int32)
    G, C, _ = conf.shape
    count = conf.sum(axis=(1, 2))
    correct = jnp.trace(conf, axis1=1, axis2=2)
    ga = _group_accuracy(correct, count)
    accuracy = _overall_accuracy(correct, count)
    out = {
        "accuracy": accuracy,
        "cwv": _masked_var(ga.accuracy, ga.present),
        "cwv_overall": _masked_sq_dev(ga.accuracy, ga.present, accuracy),
        "mcd": _masked_range(ga.accuracy, ga.present),
        "worst_group_accuracy": _masked_min(ga.accuracy, ga.present),
        "num_empty_groups": (G - jnp.sum(ga.present)).astype(jnp.int32),
    }
    if C == 2:
        dp, eo, eod = _binary_parts(conf)
        out["demographic_parity_difference"] = dp
        out["equal_opportunity_difference"] = eo
        out["equalized_odds_difference"] = eod
    return out


# --------------------------------------------------------------------------------------------------
# public API: the report


def metrics_from_confusion(conf: ArrayLike) -> dict[str, jax.Array]:
    """Scalar metrics from an int [G, C, C] confusion (see the module docstring for formulas).

    Keys: accuracy, cwv, cwv_overall, mcd, worst_group_accuracy (float32), num_empty_groups
    (int32); when
    C == 2 also demographic_parity_difference, equal_opportunity_difference,
    equalized_odds_difference (float32).
    """
    _check_conf("metrics_from_confusion", conf)
    return _metrics_impl(jnp.asarray(conf))


def fairness_report(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int, num_classes: int
) -> dict[str, jax.Array]:
    """``metrics_from_confusion(group_confusion(...))`` plus ``per_group_accuracy`` float32 [G]."""
    conf = group_confusion(y_true, y_pred, groups, num_groups, num_classes)
    out = dict(metrics_from_confusion(conf))
    out["per_group_accuracy"] = accuracy_from_confusion(conf).accuracy
    return out


# --------------------------------------------------------------------------------------------------


def fairness_improvement(metric_method: float, metric_baseline: float) -> float:
    """Relative improvement ``1 - metric_method / metric_baseline`` (plain float math).

    Positive means the method lowers the (lower-is-better) metric. A baseline of 0 gives nan.
    """
    m, b = float(metric_method), float(metric_baseline)
    if b == 0.0:
        return float("nan")
    return 1.0 - m / b

