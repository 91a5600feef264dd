import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ballot_jax as bj


def quadratic_loss(params, x):
    leaves = jax.tree.leaves(params)
    return sum(jnp.sum((p - x) ** 2) for p in leaves)


@pytest.mark.parametrize(
    "tx",
    [
        optax.sgd(0.1, momentum=0.9),
        optax.adamw(0.05, weight_decay=0.1),
        optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.05)),
    ],
    ids=["sgd_momentum", "adamw", "adam_decay_chain"],
)
def test_pruned_weights_stay_exactly_zero(tx):
    rng = np.random.default_rng(0)
    params = {"a": {"kernel": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32), "bias": jnp.ones(4)},
              "b": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
    mask = bj.make_mask(params)
    mask = bj.prune(bj.magnitude_scores(params, mask), mask, 0.6)
    opt = bj.fixed_mask(tx, mask)
    params = bj.apply_mask(params, mask)
    state = opt.init(params)

    @jax.jit
    def step(params, state, t):
        grads = jax.grad(quadratic_loss)(params, 3.0 + jnp.sin(t))
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    before = params
    for t in range(50):
        params, state = step(params, state, float(t))
    for m, p, p0 in zip(bj.mask_leaves(mask), bj.mask_leaves(bj.magnitude_scores(params, mask)),
                        bj.mask_leaves(bj.magnitude_scores(before, mask))):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)
        assert np.any(np.asarray(p)[np.asarray(m)] != np.asarray(p0)[np.asarray(m)]), "kept weights must train"
    assert not np.allclose(params["a"]["bias"], 1.0), "unprunable leaves must train"


def test_with_mask_changes_mask_without_recompiling():
    params = {"w": jnp.ones((3, 3))}
    mask = bj.make_mask(params)
    opt = bj.fixed_mask(optax.sgd(0.1), mask)
    state = opt.init(params)
    step = jax.jit(lambda g, s, p: opt.update(g, s, p))
    step(params, state, params)
    new_mask = {"w": jnp.eye(3, dtype=bool)}
    updates, _ = step(params, bj.with_mask(state, new_mask), params)
    np.testing.assert_array_equal(np.asarray(updates["w"]) != 0, np.eye(3, dtype=bool))
    assert step._cache_size() == 1


def test_flax_params_tree():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])
    params = model.init(jax.random.key(0), jnp.ones((1, 4)))["params"]
    mask = bj.make_mask(params)
    assert bj.num_prunable(mask) == 4 * 8 + 8 * 2
    mask = bj.prune_to_sparsity(bj.magnitude_scores(params, mask), mask, 0.5)
    opt = bj.fixed_mask(optax.adam(0.1), mask)
    params = bj.apply_mask(params, mask)
    state = opt.init(params)
    x = jnp.ones((3, 4))
    for _ in range(5):
        grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) ** 2))(params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert bj.sparsity_summary(mask)["kept"] == 24
    flat_p = bj.mask_leaves(bj.magnitude_scores(params, mask))
    for m, p in zip(bj.mask_leaves(mask), flat_p):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0)


@pytest.mark.parametrize(
    "tx, buffers",
    [(optax.sgd(0.1, momentum=0.9), ("trace",)), (optax.adam(0.05), ("mu", "nu"))],
    ids=["momentum", "adam"],
)
def test_moments_of_pruned_weights_are_exactly_zero(tx, buffers):
    """The gradient is masked BEFORE the inner transformation: the docstring promises that momentum,
    mu and nu stay exactly 0 at pruned entries (masking only the output would let them grow)."""
    rng = np.random.default_rng(1)
    params = {"k": jnp.asarray(rng.normal(size=(6, 5)), jnp.float32), "b": jnp.ones(5)}
    mask = bj.prune(bj.magnitude_scores(params, bj.make_mask(params)), bj.make_mask(params), 0.5)
    opt = optax.chain(optax.clip_by_global_norm(10.0), bj.fixed_mask(tx, mask))
    params = bj.apply_mask(params, mask)
    state = opt.init(params)
    for t in range(3):
        grads = jax.grad(quadratic_loss)(params, 3.0 + t)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    pruned = ~np.asarray(mask["k"])
    for name in buffers:
        moment = np.asarray(optax.tree_utils.tree_get(state, name)["k"])
        assert np.all(moment[pruned] == 0.0), name
        assert np.all(moment[~pruned] != 0.0), name


def test_with_mask_finds_the_state_inside_a_chain():
    params = {"w": jnp.ones((3, 3))}
    opt = optax.chain(optax.clip_by_global_norm(1.0), bj.fixed_mask(optax.sgd(0.1), bj.make_mask(params)))
    state = bj.with_mask(opt.init(params), {"w": jnp.eye(3, dtype=bool)})
    updates, _ = opt.update(params, state, params)
    np.testing.assert_array_equal(np.asarray(updates["w"]) != 0, np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match="no FixedMaskState"):
        bj.with_mask(optax.sgd(0.1).init(params), bj.make_mask(params))
