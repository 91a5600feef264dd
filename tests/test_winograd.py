"""ballot_jax.models.winograd: Winograd F(2x2, 3x3) equals the direct convolution, forward and
gradient (to float64 rounding in float64, to float32 rounding in float32); it is used exactly where
``covers`` says, and everywhere else ``lax.conv_general_dilated`` runs unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballot_jax.models import get_module
from ballot_jax.models import winograd as W

NHWC = ("NHWC", "HWIO", "NHWC")


def direct(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)


def _data(seed, n, h, w, c, o, dtype):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, h, w, c)).astype(dtype), r.normal(size=(3, 3, c, o)).astype(dtype)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 3), h2=st.integers(1, 5), w2=st.integers(1, 5),
       c=st.integers(1, 6), o=st.integers(1, 5))
def test_equals_direct_convolution_in_float64(seed, n, h2, w2, c, o):
    """In float64 the two algorithms agree to rounding: Winograd F(2x2, 3x3) is exact arithmetic."""
    with jax.enable_x64(True):
        x, k = _data(seed, n, 2 * h2, 2 * w2, c, o, np.float64)
        # jitted: one compilation per shape instead of one per primitive (4x faster; the same arithmetic)
        got = jax.jit(W.winograd_conv3x3)(jnp.asarray(x), jnp.asarray(k))
        want = jax.jit(direct)(jnp.asarray(x), jnp.asarray(k))
        assert got.shape == want.shape == (n, 2 * h2, 2 * w2, o) and got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-12)


def test_gradients_equal_direct_in_float64():
    """The backward pass (autodiff through the transforms) gives the direct convolution's gradients."""
    with jax.enable_x64(True):
        x, k = _data(1, 2, 6, 8, 5, 4, np.float64)
        ct = np.random.default_rng(2).normal(size=(2, 6, 8, 4))

        def grads(conv):
            grad = jax.jit(jax.grad(lambda x, k: jnp.vdot(conv(x, k), ct), argnums=(0, 1)))
            return grad(jnp.asarray(x), jnp.asarray(k))

        for got, want in zip(grads(W.winograd_conv3x3), grads(direct)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-11)


def test_float32_within_rounding_of_direct():
    x, k = _data(3, 2, 16, 16, 32, 24, np.float32)
    got, want = W.winograd_conv3x3(jnp.asarray(x), jnp.asarray(k)), direct(jnp.asarray(x), jnp.asarray(k))
    scale = np.max(np.abs(np.asarray(want)))
    assert float(jnp.max(jnp.abs(got - want))) <= 1e-5 * scale


def test_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="even height and width"):
        W.winograd_conv3x3(jnp.ones((1, 5, 4, 2)), jnp.ones((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="HWIO"):
        W.winograd_conv3x3(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 3, 2)))


COVERED = dict(lhs_shape=(2, 32, 32, 64), rhs_shape=(3, 3, 64, 8), window_strides=(1, 1), padding=((1, 1), (1, 1)),
               dimension_numbers=NHWC)


@pytest.mark.parametrize("change, covered", [
    ({}, True),
    ({"padding": "SAME"}, True),
    ({"window_strides": (2, 2)}, False),
    ({"rhs_shape": (1, 1, 16, 8)}, False),
    ({"padding": ((0, 0), (0, 0))}, False),
    ({"padding": "VALID"}, False),
    ({"lhs_shape": (2, 31, 32, 16)}, False),  # odd height
    ({"lhs_shape": (2, 32, 32, 16), "rhs_shape": (3, 3, 16, 8)}, False),  # fewer than MIN_IN_CHANNELS
    ({"lhs_shape": (1, 32, 32, 64)}, False),  # 256 tiles < MIN_TILES
    ({"rhs_dilation": (2, 2)}, False),
    ({"feature_group_count": 2}, False),
    ({"dtype": jnp.bfloat16}, False),
    ({"dimension_numbers": None}, False),  # lax's default, NCHW
])
def test_covers(change, covered):
    assert W.covers(**{**COVERED, **change}) is covered


def test_dispatch_winograd_where_covered_and_lax_bit_for_bit_elsewhere():
    x, k = _data(4, 2, 32, 32, 64, 8, np.float32)
    x, k = jnp.asarray(x), jnp.asarray(k)
    covered = W.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)
    np.testing.assert_array_equal(np.asarray(covered), np.asarray(W.winograd_conv3x3(x, k)))
    assert not np.array_equal(np.asarray(covered), np.asarray(direct(x, k)))  # it did take the other algorithm
    for args in [((2, 2), ((1, 1), (1, 1))), ((1, 1), "VALID")]:
        got = W.conv_general_dilated(x, k, *args, dimension_numbers=NHWC)
        want = jax.lax.conv_general_dilated(x, k, *args, dimension_numbers=NHWC)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_jit_and_vmap():
    x, k = _data(5, 6, 8, 8, 4, 4, np.float32)
    x, k = jnp.asarray(x.reshape(3, 2, 8, 8, 4)), jnp.asarray(k)
    got = jax.jit(jax.vmap(W.winograd_conv3x3, in_axes=(0, None)))(x, k)
    want = jax.vmap(direct, in_axes=(0, None))(x, k)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)


def _count_convs(module, variables, x):
    return jax.make_jaxpr(lambda v, x: module.apply(v, x))(variables, x).pretty_print().count("conv_general_dilated")


@pytest.mark.parametrize("name, kwargs", [("resnet18", {"norm": "batch"}), ("vgg16", {})])
def test_model_conv_impl_same_parameters_close_outputs(name, kwargs):
    """``conv_impl="winograd"`` changes how a model computes, never its parameters."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    xla, wino = get_module(name, 10, **kwargs), get_module(name, 10, conv_impl="winograd", **kwargs)
    v = xla.init(jax.random.PRNGKey(1), x)
    jax.tree.map(np.testing.assert_array_equal, v, wino.init(jax.random.PRNGKey(1), x))
    # The first stage's 3x3 convolutions (64 channels, 512 tiles at this batch) are covered.
    assert _count_convs(wino, v, x) < _count_convs(xla, v, x)
    np.testing.assert_allclose(np.asarray(wino.apply(v, x)), np.asarray(xla.apply(v, x)), rtol=1e-4, atol=1e-4)


def test_model_conv_impl_unknown_names_the_field():
    with pytest.raises(ValueError, match=r"conv_impl must be one of \('xla', 'winograd'\), got 'fast'"):
        get_module("resnet18", 10, width=4, conv_impl="fast").init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
