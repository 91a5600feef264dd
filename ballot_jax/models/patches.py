"""Convolution of a feature map smaller than its kernel, as one matrix product over patches.

Why: when a 2-D convolution's input is smaller than its kernel (VGG-16's last stack at 2x2 on
32x32 images; ResNet-50's last stage at 2x2 on 64x64 Tiny ImageNet images with the ImageNet stem),
XLA:CPU swaps the operands into a non-canonical convolution that it runs with its generic loop
emitter: a 3x3, 512 -> 512 convolution of a [32, 2, 2, 512] map takes ~910 ms, against ~20 ms for a
[32, 4, 4, 512] map with four times the work (docs/speed_notes.md §2, session 35). Here the map is
padded, its ``kh * kw`` shifted windows are concatenated along the channels (im2col) and multiplied
by the kernel reshaped to ``[kh * kw * C, O]``: the same cross-correlation, one small GEMM.

Every conv model's layers go through :func:`conv_general_dilated` (``ballot_jax.models._layers.conv``);
a convolution :func:`covers` does not take goes to the ``fallback`` unchanged, bit for bit.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax.numpy as jnp
from jax import lax

from ballot_jax.models._conv_form import explicit_padding, plain_nhwc


def patch_conv(x: jnp.ndarray, kernel: jnp.ndarray, padding: Sequence[tuple[int, int]], precision: Any = None):
    """Stride-1 cross-correlation of NHWC ``x`` with an HWIO ``kernel`` under explicit ``padding``
    ``((top, bottom), (left, right))``, as one matrix product over the padded map's windows.

    Equals ``lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO",
    "NHWC"))`` up to rounding.
    """
    kh, kw, c, o = kernel.shape
    if x.shape[-1] != c:
        raise ValueError(f"kernel must be [kh, kw, {x.shape[-1]}, O] (HWIO) for x of shape {x.shape}, got {kernel.shape}")
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"padded map {xp.shape[1:3]} is smaller than the kernel {(kh, kw)}")
    cols = jnp.concatenate([xp[:, a : a + ho, b : b + wo] for a in range(kh) for b in range(kw)], axis=-1)
    return jnp.einsum("nhwk,ko->nhwo", cols, kernel.reshape(kh * kw * c, o), precision=precision)


def covers(lhs_shape: Sequence[int], rhs_shape: Sequence[int], window_strides: Sequence[int], padding: Any,
           lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
           batch_group_count: int = 1) -> bool:
    """Whether :func:`conv_general_dilated` computes this convolution by :func:`patch_conv`: a 2-D
    NHWC/HWIO convolution, stride 1, no dilation, no feature or batch groups
    (:func:`ballot_jax.models._conv_form.plain_nhwc`), whose input height or width is smaller than the
    kernel's."""
    return plain_nhwc(lhs_shape, rhs_shape, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                      feature_group_count, batch_group_count) and (
        lhs_shape[1] < rhs_shape[0] or lhs_shape[2] < rhs_shape[1])


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None, *, fallback: Callable = lax.conv_general_dilated):
    """``lax.conv_general_dilated``'s signature: :func:`patch_conv` where :func:`covers` says so,
    ``fallback`` (another function with this signature) for every other convolution."""
    if preferred_element_type is None and covers(lhs.shape, rhs.shape, window_strides, padding, lhs_dilation,
                                                 rhs_dilation, dimension_numbers, feature_group_count,
                                                 batch_group_count):
        return patch_conv(lhs, rhs, explicit_padding(padding, rhs.shape[:2]), precision=precision)
    return fallback(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                    dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
                    batch_group_count=batch_group_count, precision=precision,
                    preferred_element_type=preferred_element_type)
