"""Binary-target fairness differences, fairlearn names: demographic parity, equal opportunity and
equalized odds differences (max − min of a rate over the groups where it is defined). Formulas:
``ballot_jax.metrics``.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from ballot_jax.metrics_accuracy import _confusion_impl, _masked_range
from ballot_jax.metrics_inputs import ArrayLike, _infer_num_groups, _prepare


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

