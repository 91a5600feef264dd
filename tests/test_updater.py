"""The sparsity updater (ballot_jax.updater): scheduled mask updates inside an optax chain, under jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import ballot_jax as bj
from ballot_jax import ballot, scorers, updater, vote


def _params(seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    return {
        "hidden": {"kernel": jax.random.normal(k[0], (6, 8)), "bias": jnp.ones(8)},
        "out": {"kernel": jax.random.normal(k[1], (8, 3)), "bias": jnp.zeros(3)},
    }


def _loss(params, batch):
    h = jnp.tanh(batch["x"] @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    logits = h @ params["out"]["kernel"] + params["out"]["bias"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])


def _batch(seed=0, shape=(16,)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(*shape, 6)).astype(np.float32)
    return {"x": x, "y": (x[..., 0] > 0).astype(np.int32) + (x[..., 1] > 1).astype(np.int32)}


def _run(tx, params, steps, **extra):
    state = tx.init(params)

    @jax.jit
    def step(params, state, batch, extra):
        grads = jax.grad(lambda p: _loss(p, batch)[0])(params)
        updates, state = tx.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state

    for i in range(steps):
        params, state = step(params, state, _batch(i), extra)
    return params, state


def _pruned(mask):
    return [~np.asarray(m) for m in bj.mask_leaves(mask)]


@pytest.mark.parametrize(
    "inner, buffers",
    [(optax.sgd(0.1, momentum=0.9), ("trace",)), (optax.adamw(0.01, weight_decay=0.1), ("mu", "nu"))],
)
def test_pruned_weights_and_their_moments_are_exactly_zero_inside_a_chain(inner, buffers):
    tx = optax.chain(optax.clip_by_global_norm(1.0), updater.sparsity_updater(inner, updater.one_shot(0.6, 3)))
    params, state = _run(tx, _params(), 6)
    mask = updater.get_mask(state)  # found inside the chain
    assert int(bj.num_kept(mask)) == bj.num_prunable(mask) - round(0.6 * bj.num_prunable(mask))
    flat = dict(zip(("hidden", "out"), _pruned(mask)))
    for layer, off in flat.items():
        w = np.asarray(params[layer]["kernel"])  # the trained params themselves, not re-masked
        assert off.any() and np.all(w[off] == 0) and np.all(w[~off] != 0), layer
    for name in buffers:
        moment = optax.tree_utils.tree_get(state, name)
        for layer, off in flat.items():
            values = np.asarray(moment[layer]["kernel"])
            assert off.any() and np.all(values[off] == 0), (name, layer)
            assert np.any(values[~off] != 0)


def test_one_shot_equals_prune_to_sparsity_of_the_weights_it_saw():
    tx = updater.sparsity_updater(optax.sgd(0.05), updater.one_shot(0.7, 2))
    params = _params(1)
    p2, state2 = _run(tx, params, 2)  # two steps taken, nothing pruned yet
    assert int(bj.num_kept(updater.get_mask(state2))) == bj.num_prunable(updater.get_mask(state2))
    _, state3 = _run(tx, params, 3)  # the third update prunes p2
    expected = bj.prune_to_sparsity(bj.magnitude_scores(p2, bj.make_mask(p2)), bj.make_mask(p2), 0.7)
    chex.assert_trees_all_equal(updater.get_mask(state3), expected)
    assert int(updater.sparsity_state(state3).level) == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 5000), st.floats(0.05, 0.6), st.integers(1, 6), st.one_of(st.none(), st.floats(0.0, 0.95)))
def test_fraction_schedule_counts_follow_the_prune_rule(n, fraction, rounds, target):
    schedule = updater.PruningSchedule((0,) * rounds, fraction=fraction, target=target)
    alive, floor = n, 0 if target is None else n - round(target * n)
    for kept in schedule.keep_counts(n):
        alive = max(floor, alive - round(fraction * alive))
        assert kept == alive


def test_lth_rounds_with_rewind_reach_the_target_and_rewind_the_schedule():
    lr = optax.linear_schedule(0.1, 0.0, 20)
    tx = updater.sparsity_updater(optax.sgd(lr, momentum=0.9), updater.lth_rounds(0.8, 0.4, step=5))
    params = _params(2)
    state = tx.init(params)
    step = jax.jit(lambda p, s, b: _update(tx, p, s, b))
    params, state = step(params, state, _batch(0))
    snapshot = (params, state)  # θ_1 and its optimizer state
    rounds = bj.rounds_to_reach(0.8, 0.4)
    for r in range(rounds):
        for i in range(5):
            params, state = step(params, state, _batch(10 * r + i))
        assert int(updater.sparsity_state(state).level) == r + 1
        params, state = updater.rewind(state, *snapshot)
        s = updater.sparsity_state(state)
        assert int(s.count) == 1 and int(s.level) == r + 1
        assert int(optax.tree_utils.tree_get(s.inner_state, "count")) == 1  # the LR schedule's position
        chex.assert_trees_all_equal(params, bj.apply_mask(snapshot[0], s.mask))
    n = bj.num_prunable(s.mask)
    assert int(bj.num_kept(s.mask)) == n - round(0.8 * n)


def _update(tx, params, state, batch, **extra):
    grads = jax.grad(lambda p: _loss(p, batch)[0])(params)
    updates, state = tx.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state


def test_conflict_scorer_waits_for_its_statistics_and_then_equals_ballot_prune():
    params = _params(3)
    group_batch = _batch(5, shape=(3, 8))
    gg = bj.per_group_grads(_loss, params, group_batch)
    tx = updater.sparsity_updater(optax.sgd(0.0), updater.one_shot(0.5, 0), scorers.Conflict())
    state = tx.init(params)
    _, state = jax.jit(lambda p, s, b: _update(tx, p, s, b))(params, state, _batch(0))
    assert int(updater.sparsity_state(state).level) == 0  # due, but no group_grads: not pruned yet
    _, state = jax.jit(lambda p, s, b, g: _update(tx, p, s, b, group_grads=g))(params, state, _batch(1), gg)
    mask = bj.make_mask(params)
    expected = bj.prune_to_sparsity(ballot.scores(params, mask, ballot.conflict_stats(params, mask, gg)), mask, 0.5)
    chex.assert_trees_all_equal(updater.get_mask(state), expected)


def test_votes_scorer_equals_keep_most_voted():
    params = _params(4)
    mask = bj.make_mask(params)
    counts = jax.tree.map(lambda m: None if m is None else jnp.asarray(np.random.default_rng(0).integers(0, 3, m.shape)),
                          mask, is_leaf=bj.is_unprunable)
    tx = updater.sparsity_updater(optax.sgd(0.0), updater.one_shot(0.75, 0), scorers.Votes())
    _, state = jax.jit(lambda p, s, b, v: _update(tx, p, s, b, votes=v))(params, tx.init(params), _batch(0), counts)
    n = bj.num_prunable(mask)
    chex.assert_trees_all_equal(updater.get_mask(state), vote.keep_most_voted(counts, params, mask, n - round(0.75 * n)))


def test_set_mask_and_gradual_schedule():
    schedule = updater.gradual(0.9, start=0, end=6, num_updates=4)
    assert schedule.steps == (0, 2, 4, 6) and schedule.sparsities[0] == 0.0 and schedule.sparsities[-1] == 0.9
    tx = updater.sparsity_updater(optax.adam(0.01), schedule, scorers.Random(), key=jax.random.key(7))
    params, state = _run(tx, _params(5), 8)
    mask = updater.get_mask(state)
    assert int(updater.sparsity_state(state).level) == 4
    assert int(bj.num_kept(mask)) == bj.num_keep_for_sparsity(bj.num_prunable(mask), 0.9)
    dense = bj.make_mask(params)
    state = updater.set_mask(state, dense)
    assert bool(updater.sparsity_state(state).moments_stale)
    chex.assert_trees_all_equal(updater.get_mask(state), dense)


def test_schedule_and_state_errors_name_the_problem():
    with pytest.raises(ValueError, match="non-decreasing"):
        updater.PruningSchedule((3, 1), sparsities=(0.1, 0.2))
    with pytest.raises(ValueError, match="exactly one of"):
        updater.PruningSchedule((1,))
    with pytest.raises(ValueError, match="no SparsityState"):
        updater.get_mask(optax.sgd(0.1).init(_params()))
    tx = updater.sparsity_updater(optax.sgd(0.1), updater.one_shot(0.5, 0))
    with pytest.raises(ValueError, match="needs the params"):
        tx.update(_params(), tx.init(_params()))
