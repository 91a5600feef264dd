import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ballot_jax as bj

shapes = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=4
)


def random_tree(shapes, seed):
    rng = np.random.default_rng(seed)
    params = {f"l{i}": {"kernel": jnp.asarray(rng.normal(size=s), jnp.float32), "bias": jnp.zeros(s[1])}
              for i, s in enumerate(shapes)}
    # Integer-valued weights produce many ties: the tie-break must still give exact counts.
    if seed % 2:
        params = jax.tree.map(lambda x: jnp.round(x * 2), params)
    return params


def kept(mask):
    return int(bj.num_kept(mask))


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0.0, 0.95), st.integers(0, 10_000), st.sampled_from(["global", "layer"]))
def test_exact_counts_and_no_revival(shapes, fraction, seed, scope):
    params = random_tree(shapes, seed)
    mask = bj.make_mask(params)
    n = bj.num_prunable(mask)
    m1 = bj.prune(bj.magnitude_scores(params, mask), mask, fraction, scope=scope)
    if scope == "global":
        assert kept(m1) == n - round(fraction * n)
    else:
        for leaf in bj.mask_leaves(m1):
            assert int(leaf.sum()) == leaf.size - round(fraction * leaf.size)
    # Second round with adversarial scores (pruned weights score highest): still never revived.
    scores = jax.tree.map(lambda m: None if m is None else jnp.where(m, 0.0, 1e9), m1,
                          is_leaf=bj.is_unprunable)
    m2 = bj.prune(scores, m1, fraction, scope=scope)
    for a, b in zip(bj.mask_leaves(m1), bj.mask_leaves(m2)):
        assert not np.any(np.asarray(b) & ~np.asarray(a)), "a pruned weight was revived"
    if scope == "global":
        k1 = kept(m1)
        assert kept(m2) == k1 - round(fraction * k1)


@settings(max_examples=30, deadline=None)
@given(shapes, st.floats(0.0, 0.99), st.integers(0, 10_000))
def test_prune_to_sparsity_exact(shapes, sparsity, seed):
    params = random_tree(shapes, seed)
    mask = bj.make_mask(params)
    n = bj.num_prunable(mask)
    out = bj.prune_to_sparsity(bj.magnitude_scores(params, mask), mask, sparsity)
    assert kept(out) == n - round(sparsity * n)


def test_magnitude_keeps_largest_and_ties_by_position():
    params = {"w": jnp.array([[1.0, -5.0], [2.0, 2.0]])}
    mask = bj.make_mask(params)
    out = bj.prune(bj.magnitude_scores(params, mask), mask, 0.5)
    np.testing.assert_array_equal(out["w"], [[False, True], [True, False]])
    # Ties broken deterministically (lower flat index kept first), and identically twice.
    ties = {"w": jnp.ones((2, 2))}
    a = bj.prune(bj.magnitude_scores(ties, mask), mask, 0.75)
    np.testing.assert_array_equal(a["w"], [[True, False], [False, False]])


def test_nan_scores_prune_first_when_allowed():
    mask = {"w": jnp.ones((4, 1), bool)}
    scores = {"w": jnp.array([[jnp.nan], [1.0], [2.0], [0.5]])}
    out = bj.prune(scores, mask, 0.25, allow_nan=True)
    np.testing.assert_array_equal(out["w"][:, 0], [False, True, True, True])
    with pytest.raises(ValueError, match=r"NaN scores at alive weights of \['w'\]"):
        bj.prune(scores, mask, 0.25)  # the default: a NaN score is an error (tests/test_reliability.py)


def test_plan_and_helpers():
    assert bj.pruning_plan(1000, 0.5, 0.2) == [800, 640, 512, 500]
    assert bj.pruning_plan(1000, 0.0) == []
    plan = bj.pruning_plan(12345, 0.95, 0.2)
    assert plan[-1] == bj.num_keep_for_sparsity(12345, 0.95) and len(plan) == bj.rounds_to_reach(0.95)
    assert (1 - bj.per_round_fraction(0.8, 4)) ** 4 == pytest.approx(0.2)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5"])
def test_bad_sparsity_raises(bad):
    params = {"w": jnp.ones((2, 2))}
    mask = bj.make_mask(params)
    with pytest.raises(ValueError, match="sparsity"):
        bj.prune_to_sparsity(bj.magnitude_scores(params, mask), mask, bad)
    with pytest.raises(ValueError, match="fraction"):
        bj.prune(bj.magnitude_scores(params, mask), mask, bad)


def test_cannot_unprune_and_shape_errors():
    params = {"w": jnp.arange(4.0).reshape(2, 2)}
    mask = bj.make_mask(params)
    pruned = bj.prune_to_sparsity(bj.magnitude_scores(params, mask), mask, 0.75)
    with pytest.raises(ValueError, match="never revives"):
        bj.prune_to_sparsity(bj.magnitude_scores(params, pruned), pruned, 0.5)
    with pytest.raises(ValueError, match="shape"):
        bj.prune({"w": jnp.ones((3, 2))}, mask, 0.5)


# The sort-free top-k of a static count (edge-popup's per-step mask) against the ranking rule.
_SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.5, float("nan"), float("inf"), float("-inf")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_SPECIAL), st.floats(-3, 3, width=32)), min_size=1, max_size=40),
       st.data())
def test_keep_top_k_of_all_is_the_ranking_rule(values, data):
    from ballot_jax.pruning import keep_top_k_of_all, rank_descending

    scores = jnp.asarray(np.asarray(values, np.float32))
    k = data.draw(st.integers(0, len(values)))
    expected = np.asarray(rank_descending(scores, jnp.ones(len(values), bool)) < k)
    got = np.asarray(jax.jit(keep_top_k_of_all, static_argnums=1)(scores, k))
    np.testing.assert_array_equal(got, expected)
    assert got.sum() == k


def test_keep_top_k_of_all_ties_go_to_the_lower_index_and_bad_k_is_named():
    from ballot_jax.pruning import keep_top_k_of_all

    s = jnp.asarray([1.0, 2.0, 2.0, -0.0, 0.0, 2.0, float("nan")])
    np.testing.assert_array_equal(keep_top_k_of_all(s, 2), [False, True, True, False, False, False, False])
    np.testing.assert_array_equal(keep_top_k_of_all(s, 5), [True, True, True, True, False, True, False])
    with pytest.raises(ValueError, match=r"k must be in \[0, 7\]"):
        keep_top_k_of_all(s, 8)
