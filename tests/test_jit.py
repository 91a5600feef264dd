"""Every public array function of the core works under ``jax.jit`` (traced inputs, traced counts) and
equals its eager (host-counted) result. Host-only helpers (counts from shapes, summaries, plans,
statistics over seeds) are listed in ``HOST_ONLY`` with the reason; a guard test fails for a public
core function that is in neither."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings, strategies as st

import ballot_jax as bj
from ballot_jax import ballot, drop_grow, pruning, vote

HOST_ONLY = {
    "num_prunable": "a Python int from shapes (static under jit)",
    "sparsity_summary": "a host-side dict of Python numbers",
    "check_mask": "a static structure/shape check (runs under jit too: nothing traced)",
    "pruning_plan": "host integers: the schedule of counts",
    "rounds_to_reach": "host integer",
    "num_keep_for_sparsity": "host integer",
    "per_round_fraction": "host float",
    "prunable_by_name": "builds a filter",
    "default_prunable": "a filter on shapes",
    "is_unprunable": "an is_leaf predicate",
    "mask_leaves": "a list of leaves",
    "fairness_improvement": "host arithmetic on two reports",
    "drop_grow.cosine_drop_fraction": "host float: the schedule of drop fractions",
    "drop_grow.update_schedule": "host integers: the update steps",
    "kept_per_leaf": "host integers from a concrete mask",
    "drop_grow.drop_counts": "host integers from a concrete mask",
    "drop_grow.ceil_drop_counts": "host integers from a concrete mask",
    "drop_grow.regrown_dropped": "a host count, for logs",
    "check_no_nan": "a host-side check that raises (one device sync)",
    "distribute_keep_counts": "host integers: a per-layer budget",
    "erk_keep_counts": "host integers: ERK's per-layer budget",
    "gradual": "builds a schedule of host integers",
    "lth_rounds": "builds a schedule of host integers",
    "sparsity_state": "finds a state in a pytree by type (structure only: works on traced states too)",
    "align_by_seed": "host statistics over seeds (NumPy)",
    "bootstrap_ci": "host statistics over seeds (NumPy)",
    "bootstrap_means": "host statistics over seeds (NumPy)",
    "paired_comparison": "host statistics over seeds (NumPy)",
    "cwv_sampling_floor": "host arithmetic on test-split counts (NumPy)",
    "oracle_group_accuracies": "host random draws (NumPy Generator)",
    "fair_oracle_power": "host statistics over seeds (NumPy)",
    "is_traced": "a host predicate on values",
}


def _params():
    k = jax.random.split(jax.random.key(0), 3)
    return {
        "conv": {"kernel": jax.random.normal(k[0], (3, 3, 2, 4)), "bias": jnp.ones(4)},
        "dense": {"kernel": jax.random.normal(k[1], (36, 3)), "bias": jnp.zeros(3)},
    }


def _loss(params, batch):
    h = jax.lax.conv_general_dilated(batch["x"], params["conv"]["kernel"], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    logits = jnp.tanh(h + params["conv"]["bias"]).reshape(h.shape[0], -1) @ params["dense"]["kernel"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])


def _group_batch():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(2, 4, 5, 5, 2)).astype(np.float32), "y": rng.integers(0, 3, (2, 4)).astype(np.int32)}


def _same(fn, *args, **kwargs):
    """jit(fn) equals fn: exactly for masks and counts, to float rounding (XLA fuses) for floats."""
    eager = fn(*args, **kwargs)
    jitted = jax.jit(functools.partial(fn, **kwargs))(*args)
    chex.assert_trees_all_equal_structs(jitted, eager)
    for x, y in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager)):
        if jnp.issubdtype(jnp.result_type(y), jnp.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(x, y)
    return eager


def test_pruning_entry_points_jit_with_traced_inputs():
    params = _params()
    mask = bj.make_mask(params)
    scores = bj.magnitude_scores(params, mask)
    half = _same(bj.prune, scores, mask, fraction=0.5)
    _same(bj.prune, scores, half, fraction=0.3, scope="layer")
    _same(bj.prune_to_sparsity, scores, half, sparsity=0.8)
    _same(bj.prune_to_sparsity, scores, mask, sparsity=0.6, scope="layer")
    _same(bj.prune_to_count, scores, mask, num_keep=17)
    # fraction, sparsity and count traced too
    chex.assert_trees_all_equal(jax.jit(bj.prune)(scores, mask, 0.5), half)
    chex.assert_trees_all_equal(jax.jit(bj.prune_to_sparsity)(scores, mask, 0.8), bj.prune_to_sparsity(scores, mask, 0.8))
    chex.assert_trees_all_equal(jax.jit(bj.prune_to_count)(scores, mask, 17), bj.prune_to_count(scores, mask, 17))
    _same(bj.keep_top_k_global, scores, mask, jnp.int32(5))
    _same(bj.keep_top_k_per_leaf, scores, mask, jnp.asarray([3, 4]))
    flat = pruning.flat_prunable(scores, mask)  # keep_top_k_of_all: a static count, traced scores
    chex.assert_trees_all_equal(jax.jit(bj.keep_top_k_of_all, static_argnums=1)(flat, 17), bj.keep_top_k_of_all(flat, 17))
    _same(pruning.random_mask, jax.random.key(1), mask, [10, 20])
    _same(pruning.uniform_scores, jax.random.key(1), mask)
    _same(bj.magnitude_scores, params, mask)


def test_drop_and_grow_jits_with_traced_counts():
    """RigL-style drop/grow (SafeCompress's mask update) under jit, counts traced: the same mask as
    eager with host counts, and every leaf keeps its active count."""
    params = _params()
    mask = bj.prune(bj.magnitude_scores(params, bj.make_mask(params)), bj.make_mask(params), 0.6, scope="layer")
    grow = bj.magnitude_scores(jax.tree.map(lambda p: jnp.cos(3.0 * p), params), mask)
    counts = drop_grow.drop_counts(mask, 0.3)
    for regrow in (False, True):
        eager = drop_grow.drop_and_grow(params, mask, grow, counts, regrow)
        jitted = jax.jit(drop_grow.drop_and_grow, static_argnums=4)(params, mask, grow, jnp.asarray(counts), regrow)
        chex.assert_trees_all_equal(jitted, eager)
        assert bj.kept_per_leaf(jitted) == bj.kept_per_leaf(mask)
        _same(drop_grow.magnitude_kept, params, mask, jnp.asarray(counts))
        assert sum(bj.kept_per_leaf(jax.tree.map(lambda a, b: None if a is None else a & ~b, jitted, mask,
                                                        is_leaf=lambda x: x is None))) > 0  # something grew


def test_mask_functions_jit():
    params = _params()
    mask = bj.prune(bj.magnitude_scores(params, bj.make_mask(params)), bj.make_mask(params), 0.5)
    other = bj.prune(pruning.uniform_scores(jax.random.key(2), mask), bj.make_mask(params), 0.5)
    for fn, args in [(bj.apply_mask, (params, mask)), (bj.num_kept, (mask,)), (bj.sparsity, (mask,)),
                     (bj.intersect_masks, (mask, other)), (bj.mask_overlap, (mask, other)), (bj.make_mask, (params,))]:
        _same(fn, *args)


def test_ballot_and_vote_jit():
    params, batch = _params(), _group_batch()
    mask = bj.make_mask(params)
    gg = bj.per_group_grads(_loss, params, batch)
    chex.assert_trees_all_close(jax.jit(bj.per_group_grads, static_argnums=0)(_loss, params, batch), gg, atol=1e-6)
    stats = _same(ballot.conflict_stats, params, mask, gg)
    _same(ballot.scores, params, mask, stats)
    _same(ballot.prune, params, mask, gg, fraction=0.4)
    v = _same(vote.vote_scores, params, mask, jax.tree.map(lambda g: g[0], gg.grads),
              jax.tree.map(lambda g: g[1], gg.grads))
    ballot_ = _same(vote.cast_votes, v, mask, 20)
    counts = _same(vote.add_votes, None, ballot_)
    counts = _same(vote.add_votes, counts, ballot_)
    _same(vote.keep_most_voted, counts, params, mask, jnp.int32(15))
    _same(vote.group_weights, jnp.asarray([0.5, 0.9]))
    _same(vote.normalize_columns, params["dense"]["kernel"])


def test_metrics_jit():
    rng = np.random.default_rng(0)
    y, p, g = (jnp.asarray(rng.integers(0, k, 50)) for k in (2, 2, 3))
    for fn in (bj.accuracy_by_group, bj.worst_group_accuracy, bj.group_wise_variance, bj.max_group_discrepancy):
        _same(fn, y, p, g, num_groups=3)
    for fn in (bj.demographic_parity_difference, bj.equal_opportunity_difference, bj.equalized_odds_difference):
        _same(lambda y, p, g: fn(y, p, sensitive_features=g, num_groups=3), y, p, g)  # noqa: B023
    _same(bj.metrics.group_wise_variance_overall, y, p, g, num_groups=3)
    conf = _same(bj.group_confusion, y, p, g, num_groups=3, num_classes=2)
    _same(bj.metrics.accuracy_from_confusion, conf)
    _same(bj.metrics.metrics_from_confusion, conf)
    _same(bj.fairness_report, y, p, g, num_groups=3, num_classes=2)


def test_optimizer_wrappers_jit():
    params = _params()
    grads = jax.tree.map(jnp.ones_like, params)
    tx = bj.sparsity_updater(optax.sgd(0.1), bj.updater.one_shot(0.5, 0))
    state = tx.init(params)
    _same(tx.update, grads, state, params)
    _same(bj.set_mask, state, bj.make_mask(params))
    _same(bj.get_mask, state)
    momentum = optax.sgd(0.1, momentum=0.9)
    _same(functools.partial(bj.updater.zero_pruned_moments, momentum), momentum.init(grads), params,
          bj.get_mask(state))
    _same(bj.rewind, state, params, state)
    fixed = bj.fixed_mask(optax.sgd(0.1), bj.make_mask(params))
    _same(fixed.update, grads, fixed.init(params), params)
    _same(bj.with_mask, fixed.init(params), bj.make_mask(params))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from((1, 2, 37, 400)), st.sampled_from((1, 5, 300)), st.floats(0.0, 0.99), st.integers(0, 2**31 - 1))
def test_traced_fraction_counts_equal_the_host_rule_away_from_half_integers(a, b, fraction, seed):
    """Traced counts are float32; the host rule float64. They agree unless fraction·n lies within
    float32 rounding of a half-integer (the only case that may differ by one). The leaves' sizes come
    from a few values (each new shape compiles both paths, ~0.8 s); the count n = alive weights
    still varies with the random mask, from 0 to 1,000."""
    rng = np.random.default_rng(seed)
    mask = {"a": jnp.asarray(rng.random(a) < 0.8), "b": jnp.asarray(rng.random((b, 2)) < 0.6)}
    scores = {"a": jnp.asarray(rng.normal(size=a)), "b": jnp.asarray(rng.normal(size=(b, 2)))}
    n = int(bj.num_kept(mask))
    traced = int(bj.num_kept(jax.jit(bj.prune)(scores, mask, fraction)))
    host = int(bj.num_kept(bj.prune(scores, mask, fraction)))
    if abs(fraction * n - np.floor(fraction * n) - 0.5) > 1e-4:
        assert traced == host
    else:
        assert abs(traced - host) <= 1


CORE_MODULES = ("masks", "pruning", "drop_grow", "layer_budgets", "updater", "scorers", "optim", "metrics", "grads",
                "samplers", "ballot", "vote", "stats", "detectability", "objectives", "tracing")


def test_every_public_core_function_is_jitted_here_or_listed_host_only():
    """A guard: a public function added to the core must get a jit check in this file or an entry
    in HOST_ONLY with its reason (named in this file's source either way)."""
    import importlib
    import inspect
    import pathlib
    import re

    source = pathlib.Path(__file__).read_text()
    missing = []
    for name in CORE_MODULES:
        module = importlib.import_module(f"ballot_jax.{name}")
        for public in getattr(module, "__all__", ()):
            if inspect.isfunction(getattr(module, public)) and not re.search(rf"\b{public}\b", source.replace(
                    "def test_every_public_core_function", "")):
                missing.append(f"ballot_jax.{name}.{public}")
    assert not missing, f"public core functions without a jit check or a HOST_ONLY reason: {missing}"
