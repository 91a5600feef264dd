"""Per-group confusion counts and accuracy, and the accuracy-disparity metrics built on them: CWV
(and the Ballot authors' CWV), MCD and the worst group's accuracy. Formulas: ``ballot_jax.metrics``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ballot_jax.metrics_inputs import ArrayLike, _check_conf, _prepare


class GroupAccuracy(NamedTuple):
    """Per-group accuracy.

    accuracy: float32 [G], 0 for empty groups. count: int32 [G] examples per group.
    present: bool [G], ``count > 0``.
    """

    accuracy: jax.Array
    count: jax.Array
    present: jax.Array


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


# --------------------------------------------------------------------------------------------------
# public API


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

