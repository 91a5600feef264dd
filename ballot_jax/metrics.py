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
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

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

ArrayLike = Any


class GroupAccuracy(NamedTuple):
    """Per-group accuracy.

    accuracy: float32 [G], 0 for empty groups. count: int32 [G] examples per group.
    present: bool [G], ``count > 0``.
    """

    accuracy: jax.Array
    count: jax.Array
    present: jax.Array


# --------------------------------------------------------------------------------------------------
# validation


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_static_int(fn: str, name: str, value: Any, minimum: int) -> int:
    if _is_tracer(value):
        raise ValueError(
            f"{fn}: {name} must be a static Python int, got a traced value; mark it static "
            f"(e.g. jax.jit(..., static_argnames='{name}'))"
        )
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{fn}: {name} must be a Python int, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return value


def _as_ids(fn: str, name: str, x: ArrayLike):
    """Integer view of labels / group ids: a tracer stays a tracer, anything else becomes NumPy."""
    if _is_tracer(x):
        dtype = np.dtype(x.dtype)
        if dtype == np.bool_ or np.issubdtype(dtype, np.integer):
            return x
        raise ValueError(
            f"{fn}: {name} must hold integer ids/labels, got dtype {dtype} "
            f"(under jax.jit float values cannot be checked; cast to int32 first, e.g. argmax logits)"
        )
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise ValueError(
                f"{fn}: {name} must hold integer ids/labels, got non-integer float values "
                f"(threshold probabilities / argmax logits first)"
            )
        return arr
    raise ValueError(
        f"{fn}: {name} must hold integer ids/labels, got dtype {arr.dtype}"
        + (
            "; encode categories as ints, e.g. np.unique(a, return_inverse=True)[1]"
            if arr.dtype.kind in "USO"
            else ""
        )
    )


def _check_range(fn: str, name: str, x, upper: int, upper_name: str) -> None:
    """Concrete-only check that all values lie in [0, upper)."""
    if _is_tracer(x) or x.size == 0:
        return
    bad = x[(x < 0) | (x >= upper)]
    if bad.size:
        vals = np.unique(bad)[:5].tolist()
        vals = [int(v) for v in vals]
        raise ValueError(
            f"{fn}: {name} contains value(s) {vals} outside [0, {upper_name}={upper})"
        )


def _check_shapes(fn: str, names, arrays) -> None:
    shapes = [tuple(np.shape(a)) for a in arrays]
    if len(set(shapes)) != 1:
        desc = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{fn}: {', '.join(names)} must have the same length/shape; got {desc}")


def _prepare(
    fn: str,
    y_true,
    y_pred,
    groups,
    num_groups: int,
    num_classes: Optional[int],
    groups_name: str = "groups",
    binary: bool = False,
):
    """Validate and return (y_true, y_pred, groups, num_groups) as int arrays."""
    num_groups = _check_static_int(fn, "num_groups", num_groups, 1)
    if num_classes is not None:
        num_classes = _check_static_int(fn, "num_classes", num_classes, 1)
    names = ("y_true", "y_pred", groups_name)
    arrays = [_as_ids(fn, n, a) for n, a in zip(names, (y_true, y_pred, groups))]
    _check_shapes(fn, names, arrays)
    _check_range(fn, groups_name, arrays[2], num_groups, "num_groups")
    if num_classes is not None:
        for n, a in zip(names[:2], arrays[:2]):
            if binary and not _is_tracer(a) and a.size:
                bad = a[(a != 0) & (a != 1)]
                if bad.size:
                    vals = [int(v) for v in np.unique(bad)[:5].tolist()]
                    raise ValueError(
                        f"{fn} is defined for binary targets only: {n} must be in {{0, 1}}, "
                        f"found {vals}"
                    )
            _check_range(fn, n, a, num_classes, "num_classes")
    out = []
    for a in arrays:
        if not _is_tracer(a):
            a = a.astype(np.int32)  # values were range-checked, no wrap-around
        out.append(a)
    return out[0], out[1], out[2], num_groups


def _infer_num_groups(fn: str, sensitive_features, num_groups: Optional[int]) -> int:
    if num_groups is not None:
        return num_groups
    if _is_tracer(sensitive_features):
        raise ValueError(
            f"{fn}: num_groups must be given (as a static int) when sensitive_features is traced"
        )
    sf = _as_ids(fn, "sensitive_features", sensitive_features)
    if sf.size == 0:
        raise ValueError(f"{fn}: cannot infer num_groups from empty sensitive_features; pass it")
    if np.min(sf) < 0:
        raise ValueError(
            f"{fn}: sensitive_features contains negative group id(s) {int(np.min(sf))}"
        )
    return int(np.max(sf)) + 1


# --------------------------------------------------------------------------------------------------
# jitted kernels


def _confusion_fn(y_true, y_pred, groups, num_groups: int, num_classes: int) -> jax.Array:
    t = jnp.asarray(y_true).reshape(-1).astype(jnp.int32)
    p = jnp.asarray(y_pred).reshape(-1).astype(jnp.int32)
    g = jnp.asarray(groups).reshape(-1).astype(jnp.int32)
    G, C = num_groups, num_classes
    valid = (g >= 0) & (g < G) & (t >= 0) & (t < C) & (p >= 0) & (p < C)
    idx = jnp.where(valid, g * (C * C) + t * C + p, 0)
    conf = jax.ops.segment_sum(valid.astype(jnp.int32), idx, num_segments=G * C * C)
    return conf.reshape(G, C, C)


_confusion_impl = jax.jit(_confusion_fn, static_argnames=("num_groups", "num_classes"))


def _correct_and_count(y_true, y_pred, groups, num_groups: int):
    """Per-group (correct, count) int32 [G] by segment sums; bad group ids are dropped."""
    t = jnp.asarray(y_true).reshape(-1).astype(jnp.int32)
    p = jnp.asarray(y_pred).reshape(-1).astype(jnp.int32)
    g = jnp.asarray(groups).reshape(-1).astype(jnp.int32)
    valid = (g >= 0) & (g < num_groups)
    idx = jnp.where(valid, g, 0)
    count = jax.ops.segment_sum(valid.astype(jnp.int32), idx, num_segments=num_groups)
    correct = jax.ops.segment_sum(
        (valid & (t == p)).astype(jnp.int32), idx, num_segments=num_groups
    )
    return correct, count


def _accuracy_fn(y_true, y_pred, groups, num_groups: int) -> GroupAccuracy:
    return _group_accuracy(*_correct_and_count(y_true, y_pred, groups, num_groups))


_accuracy_impl = jax.jit(_accuracy_fn, static_argnames=("num_groups",))


def _group_accuracy(correct: jax.Array, count: jax.Array) -> GroupAccuracy:
    present = count > 0
    acc = correct.astype(jnp.float32) / jnp.maximum(count, 1).astype(jnp.float32)
    return GroupAccuracy(acc, count.astype(jnp.int32), present)


def _masked_range(values: jax.Array, mask: jax.Array) -> jax.Array:
    """max - min of ``values`` (in [0, 1]) over ``mask``; 0 when the mask is empty."""
    hi = jnp.max(jnp.where(mask, values, 0.0))
    lo = jnp.min(jnp.where(mask, values, 1.0))
    return jnp.where(jnp.any(mask), hi - lo, 0.0).astype(jnp.float32)


def _masked_min(values: jax.Array, mask: jax.Array) -> jax.Array:
    lo = jnp.min(jnp.where(mask, values, 1.0))
    return jnp.where(jnp.any(mask), lo, 0.0).astype(jnp.float32)


def _masked_var(values: jax.Array, mask: jax.Array) -> jax.Array:
    k = jnp.maximum(jnp.sum(mask), 1).astype(jnp.float32)
    mean = jnp.sum(jnp.where(mask, values, 0.0)) / k
    return (jnp.sum(jnp.where(mask, (values - mean) ** 2, 0.0)) / k).astype(jnp.float32)


def _masked_sq_dev(values: jax.Array, mask: jax.Array, centre: jax.Array) -> jax.Array:
    """Mean over ``mask`` of (values - centre)^2; 0 when the mask is empty."""
    k = jnp.maximum(jnp.sum(mask), 1).astype(jnp.float32)
    return (jnp.sum(jnp.where(mask, (values - centre) ** 2, 0.0)) / k).astype(jnp.float32)


def _overall_accuracy(correct: jax.Array, count: jax.Array) -> jax.Array:
    """sum(correct) / sum(count) over all groups, 0 without examples."""
    return (
        jnp.sum(correct).astype(jnp.float32) / jnp.maximum(jnp.sum(count), 1).astype(jnp.float32)
    )


def _rate(num: jax.Array, den: jax.Array):
    """(num / den with 0 where den == 0, den > 0)."""
    ok = den > 0
    return num.astype(jnp.float32) / jnp.maximum(den, 1).astype(jnp.float32), ok


def _binary_parts(conf: jax.Array):
    tn, fp = conf[:, 0, 0], conf[:, 0, 1]
    fn_, tp = conf[:, 1, 0], conf[:, 1, 1]
    sel, present = _rate(fp + tp, tn + fp + fn_ + tp)
    tpr, has_pos = _rate(tp, fn_ + tp)
    fpr, has_neg = _rate(fp, tn + fp)
    dp = _masked_range(sel, present)
    eo = _masked_range(tpr, has_pos)
    eod = jnp.maximum(eo, _masked_range(fpr, has_neg))
    return dp, eo, eod


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


def _check_conf(fn: str, conf) -> None:
    shape = tuple(np.shape(conf))
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{fn}: conf must have shape [G, C, C] with G, C >= 1; got {shape}")
    dtype = np.dtype(conf.dtype) if hasattr(conf, "dtype") else np.asarray(conf).dtype
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{fn}: conf must hold integer counts, got dtype {dtype}")


# --------------------------------------------------------------------------------------------------
# public API: confusion-based


def group_confusion(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int, num_classes: int
) -> jax.Array:
    """Per-group confusion counts, int32 [G, C, C] with conf[g, t, p] = #(group g, true t, pred p).

    y_true, y_pred, groups: int arrays of one shape (e.g. [N]); num_groups = G and num_classes = C
    are static ints. Additive across batches.
    """
    fn = "group_confusion"
    y_true, y_pred, groups, num_groups = _prepare(
        fn, y_true, y_pred, groups, num_groups, num_classes
    )
    return _confusion_impl(y_true, y_pred, groups, num_groups=num_groups, num_classes=num_classes)


def accuracy_from_confusion(conf: ArrayLike) -> GroupAccuracy:
    """Per-group accuracy from an int [G, C, C] confusion: GroupAccuracy of [G] arrays."""
    _check_conf("accuracy_from_confusion", conf)
    conf = jnp.asarray(conf).astype(jnp.int32)
    return _group_accuracy(jnp.trace(conf, axis1=1, axis2=2), conf.sum(axis=(1, 2)))


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
# public API: accuracy-based convenience functions


def accuracy_by_group(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int
) -> GroupAccuracy:
    """Per-group accuracy of int labels y_true, y_pred [N] with group ids [N]: GroupAccuracy [G]."""
    return _acc("accuracy_by_group", y_true, y_pred, groups, num_groups)


def _acc(fn: str, y_true, y_pred, groups, num_groups) -> GroupAccuracy:
    y_true, y_pred, groups, num_groups = _prepare(fn, y_true, y_pred, groups, num_groups, None)
    return _accuracy_impl(y_true, y_pred, groups, num_groups=num_groups)


def group_wise_variance(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int
) -> jax.Array:
    """CWV: population variance (ddof=0) of per-group accuracies over present groups; [N] -> scalar."""
    ga = _acc("group_wise_variance", y_true, y_pred, groups, num_groups)
    return _masked_var(ga.accuracy, ga.present)


def group_wise_variance_overall(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int
) -> jax.Array:
    """The Ballot authors' CWV: mean over present groups of (a_g - overall accuracy)^2; -> scalar.

    The centre is the accuracy over all examples (not the mean of the group accuracies as in
    :func:`group_wise_variance`); 0 when there are no examples.
    """
    y_true, y_pred, groups, num_groups = _prepare(
        "group_wise_variance_overall", y_true, y_pred, groups, num_groups, None
    )
    return _cwv_overall_impl(y_true, y_pred, groups, num_groups=num_groups)


def _cwv_overall_fn(y_true, y_pred, groups, num_groups: int) -> jax.Array:
    correct, count = _correct_and_count(y_true, y_pred, groups, num_groups)
    ga = _group_accuracy(correct, count)
    return _masked_sq_dev(ga.accuracy, ga.present, _overall_accuracy(correct, count))


_cwv_overall_impl = jax.jit(_cwv_overall_fn, static_argnames=("num_groups",))


def max_group_discrepancy(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int
) -> jax.Array:
    """MCD: max - min of per-group accuracies over present groups; [N] -> scalar float32."""
    ga = _acc("max_group_discrepancy", y_true, y_pred, groups, num_groups)
    return _masked_range(ga.accuracy, ga.present)


def worst_group_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike, num_groups: int
) -> jax.Array:
    """Minimum per-group accuracy over present groups (0 if none); [N] -> scalar float32."""
    ga = _acc("worst_group_accuracy", y_true, y_pred, groups, num_groups)
    return _masked_min(ga.accuracy, ga.present)


# --------------------------------------------------------------------------------------------------
# public API: fairlearn-named binary metrics


def _binary(fn: str, y_true, y_pred, sensitive_features, num_groups):
    num_groups = _infer_num_groups(fn, sensitive_features, num_groups)
    y_true, y_pred, groups, num_groups = _prepare(
        fn, y_true, y_pred, sensitive_features, num_groups, 2,
        groups_name="sensitive_features", binary=True,
    )
    conf = _confusion_impl(y_true, y_pred, groups, num_groups=num_groups, num_classes=2)
    return _binary_parts(conf)


def demographic_parity_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    num_groups: Optional[int] = None,
) -> jax.Array:
    """max - min over non-empty groups of P(y_pred = 1 | group); binary {0,1} labels [N] -> scalar.

    ``num_groups`` (static) is inferred as max(id) + 1 when omitted and the inputs are concrete.
    """
    return _binary(
        "demographic_parity_difference", y_true, y_pred, sensitive_features, num_groups
    )[0]


def equal_opportunity_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    num_groups: Optional[int] = None,
) -> jax.Array:
    """max - min of the true positive rate over groups with a positive; binary [N] -> scalar."""
    return _binary(
        "equal_opportunity_difference", y_true, y_pred, sensitive_features, num_groups
    )[1]


def equalized_odds_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    num_groups: Optional[int] = None,
) -> jax.Array:
    """max(TPR difference, FPR difference) across groups (fairlearn "worst_case"); [N] -> scalar.

    TPR over groups with a positive, FPR over groups with a negative.
    """
    return _binary(
        "equalized_odds_difference", y_true, y_pred, sensitive_features, num_groups
    )[2]


# --------------------------------------------------------------------------------------------------


def fairness_improvement(metric_method: float, metric_baseline: float) -> float:
    """Relative improvement ``1 - metric_method / metric_baseline`` (plain float math).

    Positive means the method lowers the (lower-is-better) metric. A baseline of 0 gives nan.
    """
    m, b = float(metric_method), float(metric_baseline)
    if b == 0.0:
        return float("nan")
    return 1.0 - m / b
