"""Shared building blocks for the conv models: normalisation choice and conv initialiser.

Normalisation (``norm`` argument of every conv model)
-----------------------------------------------------
``"group"`` (the default of ResNet-18, VGG-16 and MobileNetV2)
    GroupNorm normalises each example on its own, so a model behaves identically however the batch
    is sharded across devices, split into group-stratified sub-batches (``[G, B_g, ...]`` under
    ``jax.vmap``) or evaluated one example at a time. It has no running statistics, so
    ``model_state`` is ``{}`` and train and eval mode compute the same function. This makes it the
    safe default for sharded data parallelism and for per-group gradient passes.
    The number of groups is the largest divisor of the channel count that is at most 32 and leaves
    at least two channels per group (64 ch -> 32 groups, 32 -> 16, 8 -> 4).
``"batch"``
    BatchNorm with ``use_running_average=not train``, momentum 0.9, epsilon 1e-5 (PyTorch's
    defaults). Running statistics live in the ``batch_stats`` collection, which
    :func:`ballot_jax.models.as_engine_model` returns as ``model_state``. No ``axis_name`` is set:
    under data parallelism each device normalises with its local batch, and the engine averages
    ``batch_stats`` across devices itself.
``"none"``
    No normalisation; convolutions then carry a bias (with a norm layer they don't, as its shift
    makes a conv bias redundant).

Parameter layout conventions relied on by the pruning library: every conv/dense kernel has
``ndim > 1``; biases and norm scales/offsets have ``ndim == 1``; the final classifier layer of every
model is a ``Dense`` named ``"head"`` (``params["head"]["kernel"]``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from ballot_jax.models import patches, winograd

NORMS = ("batch", "group", "none")
# How a conv model computes its 3x3 stride-1 convolutions (the ``conv_impl`` field of ResNet-18/50 and
# VGG-16): "xla" is ``lax.conv_general_dilated``; "winograd" is :mod:`ballot_jax.models.winograd`
# where it covers the layer (rounds differently; on CPU slower than lax with ballot_jax.compiler's
# options), ``lax`` elsewhere. With either, a map smaller than its kernel goes through
# :mod:`ballot_jax.models.patches` (below).
CONVS = ("xla", "winograd")
# What each ``CONVS`` entry computes a layer with. Both first take the maps smaller than the kernel
# to one matrix product over patches (:mod:`ballot_jax.models.patches`: XLA:CPU's convolution is two
# orders of magnitude slower there); every other convolution goes to lax / Winograd.
_CONV_FUNCTIONS = {
    "xla": patches.conv_general_dilated,
    "winograd": functools.partial(patches.conv_general_dilated, fallback=winograd.conv_general_dilated),
}

# He (Kaiming) normal, fan-in: keeps ReLU activations' scale through depth, even with norm="none".
conv_init = nn.initializers.he_normal()


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def check_conv(conv_impl: str) -> None:
    if conv_impl not in CONVS:
        raise ValueError(f"conv_impl must be one of {CONVS}, got {conv_impl!r}")


def num_groups(channels: int, max_groups: int = 32) -> int:
    """Largest divisor of ``channels`` that is <= max_groups and leaves >= 2 channels per group."""
    limit = max(1, min(max_groups, channels // 2))
    for g in range(limit, 0, -1):
        if channels % g == 0:
            return g
    return 1


def normalize(norm: str, x: jnp.ndarray, train: bool, name: str | None = None) -> jnp.ndarray:
    """Apply the chosen normalisation to NHWC ``x``. Call from inside an ``nn.compact`` method."""
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm(
            use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name
        )(x)
    if norm == "group":
        return nn.GroupNorm(num_groups=num_groups(x.shape[-1]), epsilon=1e-5, name=name)(x)
    return x


def conv(features: int, kernel: int, stride: int, norm: str, name: str | None = None, groups: int = 1,
         impl: str = "xla"):
    """A conv layer with 'SAME'-style symmetric padding, He init, and a bias only when norm='none'.

    ``impl`` is one of ``CONVS`` (the models' ``conv_impl`` field); it changes how the layer computes,
    never its parameters.
    """
    check_conv(impl)
    pad = (kernel - 1) // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=(norm == "none"),
        kernel_init=conv_init,
        conv_general_dilated=_CONV_FUNCTIONS[impl],
        name=name,
    )


def _windows_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """[N, H, W, C] -> [N, H/2, W/2, C, 4]: each 2x2 window's elements in row-major order."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)


@jax.custom_vjp
def _max_pool_2x2_even(x: jnp.ndarray) -> jnp.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_fwd(x):
    windows = _windows_2x2(x)
    first = jnp.argmax(windows, axis=-1).astype(jnp.int8)  # the first maximum, row-major
    return windows.max(axis=-1), (first, x.shape)


def _max_pool_bwd(residual, cotangent):
    first, (n, h, w, c) = residual
    g = jnp.where(first[..., None] == jnp.arange(4, dtype=jnp.int8), cotangent[..., None],
                  jnp.zeros((), cotangent.dtype))
    return (g.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, h, w, c),)


_max_pool_2x2_even.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """``nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")`` on NHWC ``x``, bitwise equal in
    value and gradient, several times faster to differentiate on XLA:CPU for even H, W.

    XLA's gradient of ``reduce_window`` max (``select_and_scatter``) is slow on CPU; for even sizes
    every window is full, the forward is a reshape + max, and the gradient goes to the FIRST maximum
    of each window in row-major order -- the element ``select_and_scatter`` (select ``>=``) picks, ties
    included (tests/test_models.py, benchmarks/maxpool.py). Other shapes use ``nn.max_pool``.
    """
    if x.ndim == 4 and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0:
        return _max_pool_2x2_even(x)
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
