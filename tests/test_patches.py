"""ballot_jax.models.patches: a feature map smaller than its kernel is convolved as one matrix product
over patches, equal to lax's convolution (to float64 rounding in float64); every other convolution
goes to the fallback unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballot_jax.models import _layers, get_module
from ballot_jax.models import patches as P

NHWC = ("NHWC", "HWIO", "NHWC")


def lax_conv(x, k, padding):
    return jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=NHWC)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), h=st.integers(1, 4), w=st.integers(1, 4), kh=st.sampled_from([1, 3, 5]),
       kw=st.sampled_from([1, 3]), c=st.integers(1, 4), o=st.integers(1, 3), pads=st.lists(st.integers(0, 2), min_size=4,
                                                                                           max_size=4))
def test_equals_lax_in_float64(seed, h, w, kh, kw, c, o, pads):
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    if h + pads[0] + pads[1] < kh or w + pads[2] + pads[3] < kw:
        return  # no output
    r = np.random.default_rng(seed)
    with jax.enable_x64(True):
        x, k = jnp.asarray(r.normal(size=(2, h, w, c))), jnp.asarray(r.normal(size=(kh, kw, c, o)))
        got, want = P.patch_conv(x, k, padding), lax_conv(x, k, padding)
        assert got.shape == want.shape and got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-12)


def test_gradients_equal_lax_in_float64():
    r = np.random.default_rng(1)
    with jax.enable_x64(True):
        x, k, ct = (jnp.asarray(r.normal(size=s)) for s in [(3, 2, 2, 4), (3, 3, 4, 5), (3, 2, 2, 5)])
        pad = ((1, 1), (1, 1))

        def grads(conv):
            return jax.grad(lambda x, k: jnp.vdot(conv(x, k, pad), ct), argnums=(0, 1))(x, k)

        for got, want in zip(grads(P.patch_conv), grads(lax_conv)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-12)


COVERED = dict(lhs_shape=(32, 2, 2, 8), rhs_shape=(3, 3, 8, 8), window_strides=(1, 1), padding=((1, 1), (1, 1)),
               dimension_numbers=NHWC)


@pytest.mark.parametrize("change, covered", [
    ({}, True),
    ({"padding": "SAME"}, True),
    ({"lhs_shape": (32, 3, 2, 8)}, True),  # narrower than the kernel
    ({"lhs_shape": (32, 3, 3, 8)}, False),  # as large as the kernel: lax's canonical path
    ({"window_strides": (2, 2)}, False),
    ({"rhs_dilation": (2, 2)}, False),
    ({"feature_group_count": 2}, False),
    ({"dimension_numbers": None}, False),
    ({"padding": "CIRCULAR"}, False),
])
def test_covers(change, covered):
    assert P.covers(**{**COVERED, **change}) is covered


def test_dispatch_patches_where_covered_and_fallback_unchanged_elsewhere():
    r = np.random.default_rng(2)
    k = jnp.asarray(r.normal(size=(3, 3, 8, 4)), jnp.float32)
    small = jnp.asarray(r.normal(size=(2, 2, 2, 8)), jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(P.conv_general_dilated(small, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)),
        np.asarray(P.patch_conv(small, k, ((1, 1), (1, 1)))))
    big = jnp.asarray(r.normal(size=(2, 6, 6, 8)), jnp.float32)
    calls = []

    def fallback(*args, **kwargs):
        calls.append(args[0].shape)
        return jax.lax.conv_general_dilated(*args, **kwargs)

    got = P.conv_general_dilated(big, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC, fallback=fallback)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(lax_conv(big, k, ((1, 1), (1, 1)))))
    assert calls == [(2, 6, 6, 8)]


def test_vgg16_last_stack_through_patches_matches_lax(monkeypatch):
    """VGG-16 on 32x32 inputs convolves 2x2 maps in its last stack: those go through patches; the model's
    output equals the one with every layer on lax (the parameters are the same objects)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    model = get_module("vgg16", 10, width=4)
    v = model.init(jax.random.PRNGKey(1), x)
    ours = model.apply(v, x)
    jaxpr = jax.make_jaxpr(lambda v: model.apply(v, x))(v).pretty_print()
    monkeypatch.setitem(_layers._CONV_FUNCTIONS, "xla", jax.lax.conv_general_dilated)
    assert jax.make_jaxpr(lambda v: model.apply(v, x))(v).pretty_print().count("conv_general_dilated") == \
        jaxpr.count("conv_general_dilated") + 3  # the last stack's three convolutions
    np.testing.assert_allclose(np.asarray(ours), np.asarray(model.apply(v, x)), rtol=1e-5, atol=1e-5)
