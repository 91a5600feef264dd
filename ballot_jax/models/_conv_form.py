"""The form of convolution that the models' own convolution paths (:mod:`ballot_jax.models.patches`,
:mod:`ballot_jax.models.winograd`) take: 2-D, NHWC input and output with an HWIO kernel, stride 1, no
dilation, no feature or batch groups, and a padding they can write as explicit pairs. Each path then
asks more of its own (the map smaller than the kernel; a 3x3 kernel on enough tiles)."""

from __future__ import annotations

from typing import Any, Sequence

from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


def explicit_padding(padding: Any, window: Sequence[int]) -> list[tuple[int, int]] | None:
    """``padding`` (lax's "VALID", "SAME" or pairs) as ((top, bottom), (left, right)) for a stride-1
    ``window``; None for a padding string lax has that this does not write out."""
    if isinstance(padding, str):
        if padding == "VALID":
            return [(0, 0), (0, 0)]
        if padding == "SAME":
            return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in window]
        return None
    return [tuple(int(v) for v in p) for p in padding]


def plain_nhwc(lhs_shape: Sequence[int], rhs_shape: Sequence[int], window_strides: Sequence[int], padding: Any,
               lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
               batch_group_count: int = 1) -> bool:
    """Whether a ``lax.conv_general_dilated`` call has the form of the module docstring."""
    if len(lhs_shape) != 4 or len(rhs_shape) != 4 or dimension_numbers is None:  # None: lax's NCHW default
        return False
    if tuple(window_strides) != (1, 1) or feature_group_count != 1 or batch_group_count != 1:
        return False
    if any(int(d) != 1 for d in (lhs_dilation or ())) or any(int(d) != 1 for d in (rhs_dilation or ())):
        return False
    if explicit_padding(padding, rhs_shape[:2]) is None:
        return False
    shapes = (tuple(lhs_shape), tuple(rhs_shape))
    return lax.conv_dimension_numbers(*shapes, dimension_numbers) == lax.conv_dimension_numbers(*shapes, NHWC)
