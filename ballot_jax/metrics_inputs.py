"""Argument checks of the metrics (``ballot_jax.metrics``): static ints, integer ids of one shape, and
(concrete arrays only) values in range; see the "Validation" paragraph of ``ballot_jax.metrics``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ballot_jax.tracing import is_traced

ArrayLike = Any


def _check_static_int(fn: str, name: str, value: Any, minimum: int) -> int:
    if is_traced(value):
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
    if is_traced(x):
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
    if is_traced(x) or x.size == 0:
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
            if binary and not is_traced(a) and a.size:
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
        if not is_traced(a):
            a = a.astype(np.int32)  # values were range-checked, no wrap-around
        out.append(a)
    return out[0], out[1], out[2], num_groups


def _infer_num_groups(fn: str, sensitive_features, num_groups: Optional[int]) -> int:
    if num_groups is not None:
        return num_groups
    if is_traced(sensitive_features):
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


def _check_conf(fn: str, conf) -> None:
    shape = tuple(np.shape(conf))
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{fn}: conf must have shape [G, C, C] with G, C >= 1; got {shape}")
    dtype = np.dtype(conf.dtype) if hasattr(conf, "dtype") else np.asarray(conf).dtype
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{fn}: conf must hold integer counts, got dtype {dtype}")

