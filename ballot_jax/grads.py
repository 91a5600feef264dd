"""Per-group gradients, losses and accuracies in ONE compiled pass over a group-stratified batch.

A group-stratified batch has leaves shaped ``[G, B_g, ...]`` (see
``ballot_jax.samplers.stratified_batch``). ``per_group_grads`` maps ``jax.value_and_grad``
over the group axis with ``jax.vmap``: one compiled computation, no Python loop over groups. The
mean of the G group gradients is the gradient of the group-balanced loss (each group weighs 1/G).

One exception, for speed only (same results to float rounding): on the CPU backend, when the loss
contains a convolution, the G gradients are unrolled in the same compiled program, one group after
the other, instead of vmapped. XLA:CPU runs the vmapped weight gradient of a convolution as a
grouped convolution, several times slower than G ordinary ones (docs/speed_notes.md); dense-only
losses, and every other backend, keep the vmap.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

from ballot_jax import compiler

PyTree = Any
Batch = dict[str, jax.Array]
GroupLoss = Callable[..., tuple[jax.Array, jax.Array]]  # (params, group_batch, *args) -> (loss, accuracy)


class GroupGrads(NamedTuple):
    """Per-group statistics; tree leaves have the params' shapes with a leading [G] axis.

    ``grads``: mean gradient of each group's loss; ``sq_grads``: mean over batches of the squared
    per-batch group gradient, or ``None`` for a single batch, where it equals ``grads ** 2`` (read it
    through :meth:`mean_sq_grads` either way); ``loss``, ``accuracy``: [G]. The pass over one batch
    leaves it ``None`` so that it does not write G more parameter-sized arrays: squared where it is
    consumed, inside the consumer's jit, the square fuses into the consumer's arithmetic (for the MLP
    of ``benchmarks.conflict`` the squares were a third of the pass's time, docs/speed_notes.md §3).
    """

    grads: PyTree
    sq_grads: PyTree | None
    loss: jax.Array
    accuracy: jax.Array

    def mean_sq_grads(self) -> PyTree:
        """Mean over batches of the squared per-batch group gradient: ``sq_grads``, or ``grads ** 2``
        when it is ``None`` (one batch). Jit-able."""
        return jax.tree.map(_rounded_square, self.grads) if self.sq_grads is None else self.sq_grads


def per_group_grads(loss_fn: GroupLoss, params: PyTree, batch: Batch, *args: Any) -> GroupGrads:
    """``loss_fn(params, group_batch, *args) -> (loss, accuracy)`` for every group at once. Jit-able.

    ``batch`` leaves are ``[G, B_g, ...]``; ``args`` (anything the loss needs besides the params,
    e.g. a Flax model's batch statistics) are shared by all groups. Returns gradients with a leading
    ``[G]`` axis. For several batches see :func:`mean_group_grads`; over devices
    :func:`sharded_group_grads`.
    """
    if _unroll_groups(loss_fn, params, batch, args):
        return _per_group_grads_unrolled(loss_fn, params, batch, *args)
    return _per_group_grads_vmap(loss_fn, params, batch, *args)


def _per_group_grads_vmap(loss_fn: GroupLoss, params: PyTree, batch: Batch, *args: Any) -> GroupGrads:
    """``vmap`` of ``value_and_grad`` over the group axis (the formulation everywhere but conv on CPU)."""
    in_axes = (None, 0) + (None,) * len(args)
    (loss, acc), grads = jax.vmap(jax.value_and_grad(loss_fn, has_aux=True), in_axes=in_axes)(params, batch, *args)
    return GroupGrads(grads, None, loss, acc)


def _after(group_batch: Batch, previous_loss: jax.Array) -> Batch:
    """``group_batch`` made to depend on ``previous_loss`` with no value changed: each floating leaf plus
    a zero computed from the loss (``loss > inf`` is false for every float, NaN included), which XLA
    cannot fold. An ``optimization_barrier`` does not order the passes on XLA:CPU (its pipeline expands
    barriers before scheduling; the groups then run interleaved, 15-24% slower than G separate calls,
    docs/speed_notes.md §3); a batch with no floating leaf keeps the barrier."""
    zero = (previous_loss > jnp.inf).astype(jnp.float32)
    floating = [x for x in jax.tree.leaves(group_batch) if jnp.issubdtype(x.dtype, jnp.floating)]
    if not floating:
        return jax.lax.optimization_barrier((group_batch, previous_loss))[0]
    return jax.tree.map(lambda x: x + zero.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                        group_batch)


def _per_group_grads_unrolled(loss_fn: GroupLoss, params: PyTree, batch: Batch, *args: Any) -> GroupGrads:
    """The G gradients one after the other in one program: group g's pass reads a value of group
    g-1's loss (:func:`_after`), so it starts once that pass is done and only one group's activations
    are alive at a time."""
    num_groups = jax.tree.leaves(batch)[0].shape[0]
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    outs, previous = [], None
    for g in range(num_groups):
        group_batch = jax.tree.map(lambda x: x[g], batch)
        if previous is not None:
            group_batch = _after(group_batch, previous[0][0])
        previous = grad_fn(params, group_batch, *args)
        outs.append(previous)
    (loss, acc), grads = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return GroupGrads(grads, None, loss, acc)


_CONV_PRIMITIVES = frozenset({"conv_general_dilated"})


def _has_conv(jaxpr) -> bool:
    """Whether ``jaxpr`` (or any jaxpr nested in its equations' parameters) has a convolution."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _CONV_PRIMITIVES:
            return True
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns") and _has_conv(inner):
                    return True
    return False


def _unroll_groups(loss_fn: GroupLoss, params: PyTree, batch: Batch, args: tuple = ()) -> bool:
    """Unroll instead of vmap: on the CPU backend, for a loss with a convolution (see the module doc)."""
    if jax.default_backend() != "cpu":
        return False
    group_batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), batch)
    shape = lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))  # noqa: E731
    params_shape, args_shape = jax.tree.map(shape, (params, args))
    return _has_conv(jax.make_jaxpr(loss_fn)(params_shape, group_batch, *args_shape).jaxpr)


def sharded_group_grads(loss_fn: GroupLoss, mesh: Mesh, axis_name: str = "data") -> Callable[..., GroupGrads]:
    """``fn(params, batch, *args) -> GroupGrads``, jitted, with ``batch`` [G, B_g, ...] split over the
    devices of ``mesh`` along B_g (so B_g must be divisible by the device count); ``params`` and
    ``args`` (e.g. a model's batch-norm statistics, passed to ``loss_fn(params, batch, *args)``) are
    replicated. Per-device results are ``pmean``-ed, which equals the single-device
    :func:`per_group_grads` when every device holds B_g / n examples of each group."""

    def local(params, batch, *args):
        params = jax.tree.map(lambda x: jax.lax.pcast(x, axis_name, to="varying"), params)
        out = per_group_grads(loss_fn, params, batch, *args)
        grads, loss, acc = jax.tree.map(lambda x: jax.lax.pmean(x, axis_name), (out.grads, out.loss, out.accuracy))
        # sq_grads stays None: the square of the batch's device-averaged gradient (squaring per device
        # would change the estimate) is taken by its consumer.
        return GroupGrads(grads, None, loss, acc)

    def fn(params, batch, *args):
        in_specs = (P(), P(None, axis_name)) + (P(),) * len(args)
        return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=P())(params, batch, *args)

    return compiler.jit(fn, mesh=mesh)


def mean_group_grads(fn: Callable[..., GroupGrads], params: PyTree, batches: Iterable[Batch], *args: Any) -> GroupGrads:
    """The running mean of ``fn(params, batch, *args)`` over several stratified batches (on device).

    ``fn`` is e.g. ``functools.partial(per_group_grads, loss_fn)`` (jitted) or
    :func:`sharded_group_grads`. ``sq_grads`` becomes the mean of the per-batch squared gradients
    (not the square of the mean): the Fisher-style estimate Ballot's score uses. With one batch it
    is ``fn``'s result unchanged (``sq_grads`` ``None``: the square of ``grads``).
    """
    total, count = None, 0
    for batch in batches:
        out = fn(params, batch, *args)
        total = out if total is None else _accumulate(total, out)
        count += 1
    if total is None:
        raise ValueError("mean_group_grads needs at least one batch")
    return total if count == 1 else jax.tree.map(lambda x: x / count, total)


def _rounded_square(x: jax.Array) -> jax.Array:
    """``x ** 2``, rounded before any use, as a square made by its own program is. Fused with an add,
    XLA:CPU contracts a plain square and the add into one FMA, whose single rounding changes the sum's
    last bits against squares made in the pass (what every record was computed with): it did in
    :func:`_accumulate`. The ``maximum`` with 0 changes no value (a square is +0 or more, or NaN, which
    it keeps) and stands between the product and the add."""
    return jnp.maximum(jnp.square(x), jnp.zeros((), x.dtype))


@jax.jit
def _accumulate(total: GroupGrads, out: GroupGrads) -> GroupGrads:
    """Sums of two (sums of) per-batch statistics, the squares summed too, in one fused pass per leaf."""
    add = lambda a, b: jax.tree.map(jnp.add, a, b)  # noqa: E731
    return GroupGrads(add(total.grads, out.grads), add(total.mean_sq_grads(), out.mean_sq_grads()),
                      total.loss + out.loss, total.accuracy + out.accuracy)
