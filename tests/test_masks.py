import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ballot_jax as bj


def tree():
    return {
        "conv": {"kernel": jnp.arange(24.0).reshape(2, 3, 4) - 10, "bias": jnp.ones(4)},
        "dense": {"kernel": jnp.ones((4, 2)), "scale": jnp.ones(2)},
    }


def test_default_filter_prunes_kernels_only():
    mask = bj.make_mask(tree())
    assert mask["conv"]["bias"] is None and mask["dense"]["scale"] is None
    assert mask["conv"]["kernel"].dtype == jnp.bool_ and mask["conv"]["kernel"].all()
    assert bj.num_prunable(mask) == 24 + 8


def test_custom_filter_on_key_path():
    mask = bj.make_mask(tree(), bj.prunable_by_name("dense"))
    assert mask["dense"]["kernel"] is None and mask["conv"]["kernel"] is not None


def test_apply_mask_zeroes_pruned_and_passes_unprunable():
    params = tree()
    mask = bj.make_mask(params)
    mask["conv"]["kernel"] = mask["conv"]["kernel"].at[0].set(False)
    out = jax.jit(bj.apply_mask)(params, mask)
    assert (out["conv"]["kernel"][0] == 0).all()
    chex.assert_trees_all_equal(out["conv"]["kernel"][1], params["conv"]["kernel"][1])
    chex.assert_trees_all_equal(out["conv"]["bias"], params["conv"]["bias"])


def test_summary_counts():
    params = tree()
    mask = bj.make_mask(params)
    mask["dense"]["kernel"] = jnp.zeros((4, 2), bool)
    s = bj.sparsity_summary(mask, params)
    assert s["prunable"] == 32 and s["kept"] == 24
    assert s["sparsity"] == pytest.approx(8 / 32)
    assert s["total"] == 38 and s["overall_sparsity"] == pytest.approx(8 / 38)
    assert s["per_leaf"]["['dense']['kernel']"]["sparsity"] == 1.0
    assert float(bj.sparsity(mask)) == pytest.approx(0.25)


def test_overlap_and_intersection():
    a = {"w": jnp.array([True, True, False, False]), "b": None}
    b = {"w": jnp.array([True, False, True, False]), "b": None}
    assert float(bj.mask_overlap(a, b)) == pytest.approx(1 / 3)
    assert float(bj.mask_overlap(a, a)) == 1.0
    np.testing.assert_array_equal(bj.intersect_masks(a, b)["w"], [True, False, False, False])


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"conv": {"kernel": jnp.ones((2, 3, 4), bool)}, "dense": {"kernel": None, "scale": None}}, "structure"),
        (
            {
                "conv": {"kernel": jnp.ones((2, 3, 5), bool), "bias": None},
                "dense": {"kernel": jnp.ones((4, 2), bool), "scale": None},
            },
            "shape",
        ),
        (
            {
                "conv": {"kernel": jnp.ones((2, 3, 4)), "bias": None},
                "dense": {"kernel": jnp.ones((4, 2), bool), "scale": None},
            },
            "dtype",
        ),
    ],
)
def test_check_mask_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        bj.check_mask(tree(), bad)
