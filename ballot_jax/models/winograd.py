"""Winograd F(2x2, 3x3) convolution: a drop-in for ``lax.conv_general_dilated`` on 3x3, stride-1 layers.

Why (session 35): on XLA:CPU, with its default YNNPACK convolutions, the direct 3x3 convolution reached
less of the core's FMA rate than PyTorch's oneDNN kernels (docs/speed_notes.md §2). Winograd's minimal
filtering algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) computes each 2x2 output tile from a 4x4
input tile with 16 multiplications per (input channel, output channel) pair instead of 36, so the
bulk of the work becomes 16 batched matrix products, which XLA:CPU runs at the full GEMM rate:

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A        (per tile d, kernel g; ⊙ summed over input channels)

with B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]], G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]],
A^T = [[1,1,1,0],[0,1,-1,-1]]. This is the cross-correlation deep-learning "convolution" computes,
exactly (in exact arithmetic); in float32 it rounds differently from the direct algorithm (each
output within a few ulps of the inputs' scale; tests/test_winograd.py checks it against the direct
one, and against float64). Its gradient is the gradient of these linear maps (JAX's autodiff): the
backward pass is Winograd too.

Use it through a model's ``conv_impl="winograd"`` field (ResNet-18, ResNet-50, VGG-16), or pass
:func:`conv_general_dilated` to ``flax.linen.Conv(conv_general_dilated=...)`` directly. Every
convolution it does not cover (see :func:`covers`) falls through to ``lax.conv_general_dilated``
unchanged, bit for bit. The default of every model stays ``conv_impl="xla"``: the records in
docs/results.md were made with it, and on a GPU cuDNN chooses its own algorithm (Winograd among
them) anyway. With XLA's default CPU convolutions (YNNPACK) it took 6-9% off a ResNet-18 training step on
the development CPU (VGG-16: 4%; ResNet-50: nothing measurable). Since session 37 ballot_jax compiles its
programs without YNNPACK convolutions (:mod:`ballot_jax.compiler`), and the direct convolution is then the
faster one: ResNet-18's step 646 ms against 840-850 ms with Winograd (2 threads; 1136 against 1334 ms at
1 thread; docs/speed_notes.md §2). Kept as an option, not a speed-up.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from ballot_jax.models._conv_form import explicit_padding, plain_nhwc

# Filter transform (4x3). The input (B^T) and output (A^T) transforms are written out as sums below.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

# What :func:`covers` asks besides the layer's form. Measured at 1 thread on the development
# machine's CPU (docs/speed_notes.md §2, session 35; docs/results/scripts/session35_winograd.py):
# Winograd pays when its 16 matrix products have enough rows (output tiles) to amortise the filter
# transform -- ResNet-18's 512-channel 4x4 layers at batch 32 (128 tiles) are slower with it, the
# 256-channel 8x8 ones (512 tiles) faster -- and enough input channels to make each product worth
# the input transform: 3 (the stem) and 16 input channels are slower with it, 64 and up faster.
MIN_TILES = 512
MIN_IN_CHANNELS = 64


def _rows_bt(r0, r1, r2, r3):
    """B^T applied along one axis to the four slices d0..d3 of a 4-long window."""
    return (r0 - r2, r1 + r2, r2 - r1, r1 - r3)


def _input_transform(x: jnp.ndarray) -> jnp.ndarray:
    """[N, H, W, C] (H, W even; padded by one inside) -> [16, N*H/2*W/2, C]: B^T d B for every tile."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = _rows_bt(*(xp[:, a : a + h : 2] for a in range(4)))  # each [N, H/2, W+2, C]
    tiles = [t for r in rows for t in _rows_bt(*(r[:, :, b : b + w : 2] for b in range(4)))]
    return jnp.stack(tiles).reshape(16, -1, c)


def _kernel_transform(kernel: jnp.ndarray) -> jnp.ndarray:
    """[3, 3, C, O] -> [16, C, O]: G g G^T for every (input, output) channel pair."""
    _, _, c, o = kernel.shape
    g = jnp.asarray(_G, kernel.dtype)
    t = (g @ kernel.reshape(3, -1)).reshape(4, 3, c * o)  # along the kernel's rows
    return jnp.einsum("jb,ibz->ijz", g, t).reshape(16, c, o)  # along its columns


def _output_transform(m: jnp.ndarray, n: int, h: int, w: int) -> jnp.ndarray:
    """[16, N*H/2*W/2, O] -> [N, H, W, O]: A^T M A for every tile, the tiles put back in place."""
    m = m.reshape(4, 4, n, h // 2, w // 2, -1)

    def at(t):  # A^T along the leading axis of t (length 4)
        return jnp.stack([t[0] + t[1] + t[2], t[1] - t[2] - t[3]])

    y = at(at(m).swapaxes(0, 1)).swapaxes(0, 1)  # [2 (row in tile), 2 (column), N, H/2, W/2, O]
    return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, h, w, -1)


def winograd_conv3x3(x: jnp.ndarray, kernel: jnp.ndarray, precision: Any = None) -> jnp.ndarray:
    """3x3, stride-1, padding-1 ("SAME") cross-correlation of NHWC ``x`` with an HWIO ``kernel``.

    Equals ``lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"))`` up to rounding. ``x``'s height and width must be
    even (the 2x2 output tiles); ``precision`` is passed to the batched matrix product.
    """
    n, h, w, c = x.shape
    if kernel.shape[:3] != (3, 3, c):
        raise ValueError(f"kernel must be [3, 3, {c}, O] (HWIO) for x of shape {x.shape}, got {kernel.shape}")
    if h % 2 or w % 2:
        raise ValueError(f"winograd_conv3x3 needs an even height and width, got {h}x{w}")
    v = _input_transform(x)
    u = _kernel_transform(kernel.astype(x.dtype))
    m = jnp.einsum("tpc,tco->tpo", v, u, precision=precision)
    return _output_transform(m, n, h, w)


def covers(lhs_shape: Sequence[int], rhs_shape: Sequence[int], window_strides: Sequence[int], padding: Any,
           lhs_dilation=None, rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
           batch_group_count: int = 1, dtype: Any = jnp.float32) -> bool:
    """Whether :func:`conv_general_dilated` computes this convolution by Winograd.

    It must be a 2-D NHWC/HWIO convolution with a 3x3 kernel, stride 1, padding 1 on every side (or
    "SAME"), no dilation, no feature or batch groups, an even height and width, a float32 or float64
    dtype (the transforms lose too much in half precision), at least ``MIN_IN_CHANNELS`` input
    channels and at least ``MIN_TILES`` 2x2 output tiles (batch x height/2 x width/2).
    """
    if not plain_nhwc(lhs_shape, rhs_shape, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                      feature_group_count, batch_group_count):
        return False
    if tuple(rhs_shape[:2]) != (3, 3) or explicit_padding(padding, (3, 3)) != [(1, 1), (1, 1)]:
        return False
    if jnp.dtype(dtype) not in (jnp.float32, jnp.float64):
        return False
    n, h, w, c = lhs_shape
    return h % 2 == 0 and w % 2 == 0 and c >= MIN_IN_CHANNELS and n * (h // 2) * (w // 2) >= MIN_TILES


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """``lax.conv_general_dilated``, by Winograd F(2x2, 3x3) where :func:`covers` says so.

    Same signature and result layout as ``lax.conv_general_dilated``; every other convolution is
    handed to it unchanged. Pass it as ``flax.linen.Conv(..., conv_general_dilated=conv_general_dilated)``.
    """
    if preferred_element_type is None and covers(
        lhs.shape, rhs.shape, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, jnp.result_type(lhs, rhs),
    ):
        return winograd_conv3x3(lhs, rhs, precision=precision)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision, preferred_element_type=preferred_element_type,
    )
