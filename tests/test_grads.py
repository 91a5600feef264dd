import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ballot_jax.engine.mesh import data_mesh, put_batch
from ballot_jax.engine.steps import group_loss
from ballot_jax.grads import mean_group_grads, per_group_grads, sharded_group_grads
from engine_fixtures import mlp_model

G, B = 3, 8


def classification_loss(model, state):
    """The engine model's group loss with its (frozen) model state bound: ``loss_fn(params, batch)``."""
    loss = group_loss(model)
    return lambda params, batch: loss(params, batch, state)


def setup():
    model = mlp_model(hidden=6, num_classes=3)
    params, state = model.init(jax.random.PRNGKey(0), jnp.ones((1, 5)))
    rng = np.random.default_rng(0)
    batch = {
        "x": rng.normal(size=(G, B, 5)).astype(np.float32),
        "y": rng.integers(0, 3, size=(G, B)).astype(np.int32),
        "group": np.repeat(np.arange(G), B).reshape(G, B).astype(np.int32),
    }
    return model, params, state, batch


def test_per_group_equals_separate_grads():
    model, params, state, batch = setup()
    loss_fn = classification_loss(model, state)
    out = jax.jit(per_group_grads, static_argnums=0)(loss_fn, params, batch)
    for g in range(G):
        one = jax.tree.map(lambda x: x[g], batch)
        (loss, acc), grad = jax.value_and_grad(loss_fn, has_aux=True)(params, one)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[g], out.grads), grad, atol=1e-6)
        np.testing.assert_allclose(out.loss[g], loss, rtol=1e-6)
        np.testing.assert_allclose(out.accuracy[g], acc)


def test_mean_over_groups_is_the_balanced_gradient():
    model, params, state, batch = setup()
    loss_fn = classification_loss(model, state)
    out = per_group_grads(loss_fn, params, batch)
    flat = jax.tree.map(lambda x: x.reshape(G * B, *x.shape[2:]), batch)
    # With B examples per group, the plain mean loss over all G*B examples is the balanced loss.
    _, full = jax.value_and_grad(loss_fn, has_aux=True)(params, flat)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x.mean(0), out.grads), full, atol=1e-6)


def test_sharded_equals_single_device_and_accumulates():
    model, params, state, batch = setup()
    results = []
    for n in (1, 4):
        mesh = data_mesh(jax.devices()[:n])
        fn = sharded_group_grads(group_loss(model), mesh)
        batches = [put_batch(batch, mesh, axis=1), put_batch(jax.tree.map(lambda x: x[:, ::-1], batch), mesh, axis=1)]
        results.append(mean_group_grads(fn, params, batches, state))
    chex.assert_trees_all_close(results[0], results[1], atol=1e-6)
    single = per_group_grads(classification_loss(model, state), params, batch)
    np.testing.assert_allclose(results[0].loss, single.loss, rtol=1e-6)  # reversed batch: same mean loss


def test_one_batch_leaves_the_squares_to_the_consumer():
    model, params, state, batch = setup()
    out = jax.jit(per_group_grads, static_argnums=0)(classification_loss(model, state), params, batch)
    assert out.sq_grads is None
    chex.assert_trees_all_equal(out.mean_sq_grads(), jax.tree.map(jnp.square, out.grads))
    mesh = data_mesh(jax.devices()[:1])
    single = mean_group_grads(sharded_group_grads(group_loss(model), mesh), params, [put_batch(batch, mesh, axis=1)], state)
    assert single.sq_grads is None
    chex.assert_trees_all_close(single.grads, out.grads, atol=1e-6)


def test_sq_grads_average_the_squares_of_per_batch_grads():
    model, params, state, batch = setup()
    mesh = data_mesh(jax.devices()[:1])
    fn = sharded_group_grads(group_loss(model), mesh)
    other = jax.tree.map(lambda x: x[:, ::-1] * (1 if x.dtype != np.float32 else -1), batch)
    third = jax.tree.map(lambda x: x[:, ::-1] * (1 if x.dtype != np.float32 else 0.5), batch)
    batches = [put_batch(b, mesh, axis=1) for b in (batch, other, third)]
    out = mean_group_grads(fn, params, batches, state)
    a = per_group_grads(classification_loss(model, state), params, batch).grads
    b = per_group_grads(classification_loss(model, state), params, other).grads
    expected = jax.tree.map(lambda x, y: (x**2 + y**2) / 2, a, b)
    chex.assert_trees_all_close(mean_group_grads(fn, params, batches[:2], state).sq_grads, expected, atol=1e-6)
    # Bit for bit what squares made on their own and summed in order give (the records' arithmetic):
    # no FMA contraction of square-and-add in the fused accumulation.
    g = [fn(params, x, state).grads for x in batches]
    squares = [jax.tree.map(jnp.square, x) for x in g]
    expected = jax.tree.map(lambda x, y, z: ((x + y) + z) / 3, *squares)
    chex.assert_trees_all_equal(out.sq_grads, expected)
    chex.assert_trees_all_equal(out.grads, jax.tree.map(lambda x, y, z: ((x + y) + z) / 3, *g))


def test_the_accumulated_square_is_rounded_before_the_sum():
    from ballot_jax.grads import _rounded_square

    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.normal(size=(64, 257)) * 1e-3, jnp.float32) for _ in range(2))
    fused = jax.jit(lambda a, b: _rounded_square(a) + _rounded_square(b))(a, b)
    np.testing.assert_array_equal(fused, jnp.square(a) + jnp.square(b))  # eager: two rounded squares
    special = jnp.asarray([jnp.nan, -0.0, 0.0, jnp.inf, -jnp.inf, 1e-30, -3.0, 1e20], jnp.float32)
    got = jax.jit(_rounded_square)(special)
    np.testing.assert_array_equal(got, jnp.square(special))
    assert not np.signbit(np.asarray(got)).any()


def cnn_setup():
    from ballot_jax.models import get_model

    model = get_model("small_cnn", num_classes=3, channels=(4, 8), dense=8)
    params, state = model.init(jax.random.PRNGKey(1), jnp.ones((1, 8, 8, 3)))
    rng = np.random.default_rng(1)
    batch = {
        "x": rng.normal(size=(G, B, 8, 8, 3)).astype(np.float32),
        "y": rng.integers(0, 3, size=(G, B)).astype(np.int32),
        "group": np.repeat(np.arange(G), B).reshape(G, B).astype(np.int32),
    }
    return model, params, state, batch


def test_formulation_choice_conv_on_cpu_unrolls_dense_vmaps():
    from ballot_jax import grads

    assert jax.default_backend() == "cpu"  # conftest: JAX_PLATFORMS=cpu
    model, params, state, batch = cnn_setup()
    assert grads._unroll_groups(classification_loss(model, state), params, batch)
    model, params, state, batch = setup()
    assert not grads._unroll_groups(classification_loss(model, state), params, batch)


def test_unrolled_formulation_equals_the_vmap_one():
    from ballot_jax import grads

    for model, params, state, batch in (cnn_setup(), setup()):
        loss_fn = classification_loss(model, state)
        ref = jax.jit(grads._per_group_grads_vmap, static_argnums=0)(loss_fn, params, batch)
        for fn in (grads._per_group_grads_unrolled, per_group_grads):
            out = jax.jit(fn, static_argnums=0)(loss_fn, params, batch)
            assert jax.tree.structure(out) == jax.tree.structure(ref)
            chex.assert_trees_all_close(out, ref, atol=1e-6, rtol=1e-5)
        # and each group's gradient is that group's own gradient (not, e.g., the same group G times)
        g1 = jax.value_and_grad(loss_fn, has_aux=True)(params, jax.tree.map(lambda x: x[1], batch))[1]
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], out.grads), g1, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("loss", [0.7, float("nan"), float("inf"), -float("inf")])
def test_the_unrolled_passes_chain_on_a_value_that_changes_nothing(loss):
    """Group g's batch reads group g-1's loss (the dependency that orders the passes) and stays equal,
    whatever the loss; integer leaves are untouched; a batch without floating leaves is returned whole."""
    from ballot_jax import grads

    batch = {"x": jnp.array([[-1.5, 0.0], [2.0, 3.25]]), "w": jnp.array([0.5], jnp.bfloat16),
             "y": jnp.array([1, 2], jnp.int32)}
    for after in (grads._after, jax.jit(grads._after)):
        out = after(batch, jnp.float32(loss))
        chex.assert_trees_all_equal(out, batch)
        assert jax.tree.map(lambda a: a.dtype, out) == jax.tree.map(lambda a: a.dtype, batch)
    ints = {"y": jnp.array([1, 2], jnp.int32)}
    chex.assert_trees_all_equal(jax.jit(grads._after)(ints, jnp.float32(loss)), ints)
    # the compiled program still reads the loss: XLA does not fold the zero away
    assert "compare(" in jax.jit(grads._after).lower(batch, jnp.float32(loss)).compile().as_text()


def test_sharded_cnn_group_grads_equal_single_device():
    model, params, state, batch = cnn_setup()
    single = per_group_grads(classification_loss(model, state), params, batch)
    for n in (1, 4):
        mesh = data_mesh(jax.devices()[:n])
        out = sharded_group_grads(group_loss(model), mesh)(params, put_batch(batch, mesh, axis=1), state)
        chex.assert_trees_all_close(out.grads, single.grads, atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(out.loss, single.loss, rtol=1e-6)


def test_plain_loss_fn_with_extra_args_and_a_running_mean():
    """A researcher's loss ``loss_fn(params, batch, scale)``: extra args are shared by the groups, and
    ``mean_group_grads`` over a jitted ``per_group_grads`` is the mean of the per-batch results."""
    import functools

    def loss_fn(params, batch, scale):
        logits = scale * batch["x"] @ params["w"]
        loss = jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, batch["y"][:, None], -1)[:, 0])
        return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])

    _, _, _, batch = setup()
    params = {"w": jnp.asarray(np.random.default_rng(3).normal(size=(5, 3)), jnp.float32)}
    fn = jax.jit(functools.partial(per_group_grads, loss_fn))
    other = jax.tree.map(lambda x: x[:, ::-1] * (1 if x.dtype != np.float32 else -1), batch)
    out = mean_group_grads(fn, params, [batch, other], 2.0)
    a, b = fn(params, batch, 2.0), fn(params, other, 2.0)
    mean = lambda x, y: (x + y) / 2  # noqa: E731
    chex.assert_trees_all_close(out._replace(sq_grads=None), jax.tree.map(mean, a, b), atol=1e-6)
    chex.assert_trees_all_close(out.sq_grads, jax.tree.map(mean, a.mean_sq_grads(), b.mean_sq_grads()), atol=1e-6)
    one = jax.grad(lambda p: loss_fn(p, jax.tree.map(lambda x: x[0], batch), 2.0)[0])(params)
    chex.assert_trees_all_close(a.grads["w"][0], one["w"], atol=1e-6)
