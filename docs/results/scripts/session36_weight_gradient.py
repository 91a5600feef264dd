"""Session 36 (issue #15): the 3x3 weight gradient as nine matrix products over a flattened padded map.

The weight gradient of a 3x3, stride-1, padding-1 NHWC convolution is
``dW[kh, kw] = sum over (n, h, w) of xpad[n, h + kh, w + kw, :]^T dy[n, h, w, :]``. Flatten the padded
input to ``[M, C]`` (M = N (H+2) (W+2)) and pad ``dy`` with two zero rows and columns to the same grid
(``[M, O]``): then each tap is ONE product of a contiguous row window of the flat input with the flat
``dy``, ``xflat[d : d + Q]^T @ dyflat[:Q]`` with ``d = kh (W+2) + kw`` (the zero rows of ``dy`` cancel
every window that would cross a row or an image). No 4-D shifted slices, 13% more rows than the map.

This times XLA's own weight gradient (``jax.vjp`` of ``lax.conv_general_dilated`` with respect to the
kernel) against five arrangements of those nine products, for ResNet-18's 3x3 stride-1 layers at batch
32, one thread, median of 9 (each jitted alone); the figure beside each is max |difference| / max |XLA's|.

    taskset -c 0 python docs/results/scripts/session36_weight_gradient.py
    taskset -c 0 python docs/results/scripts/session36_weight_gradient.py gemm   # one tap's product alone
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from session35_winograd import median_ms  # this script's folder is on sys.path

DN = ("NHWC", "HWIO", "NHWC")
SHAPES = ((64, 32), (128, 16), (256, 8), (512, 4))  # (channels, map side) of ResNet-18's CIFAR stages
BATCH = 32
TRANSPOSED = (((0,), (0,)), ((), ()))  # contract the leading (row) axis of both operands


def xla_weight_gradient(x, w, dy):
    """XLA's own: the kernel's VJP of the direct convolution."""
    conv = lambda w_: lax.conv_general_dilated(x, w_, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
    return jax.vjp(conv, w)[1](dy)[0]


def flat(x, dy):
    """``(xflat [M, C], dyflat [Q, O], row stride s, Q)``: the padded input and ``dy`` on one grid."""
    s = x.shape[2] + 2
    xflat = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(-1, x.shape[-1])
    dyflat = jnp.pad(dy, ((0, 0), (0, 2), (0, 2), (0, 0))).reshape(-1, dy.shape[-1])
    q = xflat.shape[0] - (2 * s + 2)
    return xflat, dyflat[:q], s, q


def offsets(s):
    return [kh * s + kw for kh in range(3) for kw in range(3)]


def nine_tn(x, w, dy):
    """Nine ``window^T @ dy`` products, both operands row-major (transposed-lhs GEMMs)."""
    xf, dyf, s, q = flat(x, dy)
    taps = [lax.dot_general(lax.slice_in_dim(xf, d, d + q), dyf, TRANSPOSED) for d in offsets(s)]
    return jnp.stack(taps).reshape(3, 3, x.shape[-1], -1)


def stacked(x, w, dy):
    """The nine windows stacked, one batched contraction."""
    xf, dyf, s, q = flat(x, dy)
    windows = jnp.stack([lax.slice_in_dim(xf, d, d + q) for d in offsets(s)])
    return jnp.einsum("kqc,qo->kco", windows, dyf).reshape(3, 3, x.shape[-1], -1)


def im2col(x, w, dy):
    """The nine windows side by side ``[Q, 9C]``, one product."""
    xf, dyf, s, q = flat(x, dy)
    windows = jnp.concatenate([lax.slice_in_dim(xf, d, d + q) for d in offsets(s)], axis=1)
    return lax.dot_general(windows, dyf, TRANSPOSED).reshape(3, 3, x.shape[-1], -1)


def nine_nn(x, w, dy):
    """The input transposed once to ``[C, M]``: nine plain (untransposed) products of column windows."""
    xf, dyf, s, q = flat(x, dy)
    xt = xf.T
    taps = [xt[:, d:d + q] @ dyf for d in offsets(s)]
    return jnp.stack(taps).reshape(3, 3, x.shape[-1], -1)


def nine_nn_once(x, w, dy):
    """As ``nine_nn``, the transpose kept as one array (``optimization_barrier``): without it XLA fuses a
    transposing copy into each of the nine windows."""
    xf, dyf, s, q = flat(x, dy)
    xt = lax.optimization_barrier(xf.T)
    taps = [xt[:, d:d + q] @ dyf for d in offsets(s)]
    return jnp.stack(taps).reshape(3, 3, x.shape[-1], -1)


def im2col_once(x, w, dy):
    """The transposed input kept once; its nine column windows stacked ``[9C, Q]``, one plain product."""
    xf, dyf, s, q = flat(x, dy)
    xt = lax.optimization_barrier(xf.T)
    windows = jnp.concatenate([xt[:, d:d + q] for d in offsets(s)], axis=0)
    return (windows @ dyf).reshape(3, 3, x.shape[-1], -1)


def nine_nn_dy(x, w, dy):
    """``dy`` transposed once to ``[O, Q]``: nine plain products with contiguous row windows of the input."""
    xf, dyf, s, q = flat(x, dy)
    dyt = dyf.T
    taps = jnp.stack([dyt @ lax.slice_in_dim(xf, d, d + q) for d in offsets(s)])  # [9, O, C]
    return jnp.swapaxes(taps, 1, 2).reshape(3, 3, x.shape[-1], -1)


VARIANTS = {"xla": xla_weight_gradient, "nine_tn": nine_tn, "stacked": stacked, "im2col": im2col,
            "nine_nn": nine_nn, "nine_nn_once": nine_nn_once, "im2col_once": im2col_once, "nine_nn_dy": nine_nn_dy}


def main():
    print(f"weight gradient of a 3x3 stride-1 convolution, batch {BATCH}: ms (max |diff| / max |xla|)")
    for channels, side in SHAPES:
        kx, kw, kdy = jax.random.split(jax.random.PRNGKey(0), 3)
        x = jax.random.normal(kx, (BATCH, side, side, channels))
        w = 0.05 * jax.random.normal(kw, (3, 3, channels, channels))
        dy = jax.random.normal(kdy, (BATCH, side, side, channels))
        reference = np.asarray(jax.jit(xla_weight_gradient)(x, w, dy))
        row = []
        for name, variant in VARIANTS.items():
            fn = jax.jit(variant)
            err = np.abs(np.asarray(fn(x, w, dy)) - reference).max() / np.abs(reference).max()
            row.append(f"{name} {median_ms(fn, x, w, dy):.1f} ({err:.0e})")
        print(f"{channels:>3} ch {side:>2}x{side:<2} " + " | ".join(row), flush=True)


def gemm():
    """One tap's product alone at the 64-channel layer's size (Q = 32 x 34 x 34 rows): transposed-lhs
    (both operands row-major ``[Q, C]``, as ``nine_tn``) against the lhs already ``[C, Q]``."""
    q, c = BATCH * 34 * 34, 64
    a = jax.random.normal(jax.random.PRNGKey(0), (q, c))
    b = jax.random.normal(jax.random.PRNGKey(1), (q, c))
    tn = jax.jit(lambda a, b: lax.dot_general(a, b, TRANSPOSED))
    nn = jax.jit(lambda at, b: at @ b)
    t_tn, t_nn = median_ms(tn, a, b), median_ms(nn, a.T.copy(), b)
    gflop = 2 * q * c * c / 1e9
    print(f"[{q}, {c}]^T [{q}, {c}]: transposed-lhs {t_tn:.2f} ms ({gflop / t_tn * 1e3:.0f} GFLOP/s), "
          f"lhs already [{c}, {q}] {t_nn:.2f} ms ({gflop / t_nn * 1e3:.0f} GFLOP/s)")


if __name__ == "__main__":
    gemm() if sys.argv[1:] == ["gemm"] else main()
