"""Jitted, data-parallel train and eval steps for any ``Model`` (apply function + params pytree).

The train step runs under ``jax.shard_map`` over the mesh's 'data' axis: the batch is split across
devices; params, optimizer state (with the mask inside it) and model state are replicated. Each
device runs the model on its shard; the logits and labels are gathered so that the objective is
evaluated on the global batch (a fairness surrogate is not a mean of per-shard values); params are
``pcast`` to device-varying before differentiation and the gradients are ``pmean``-ed, which gives
the one-device gradient on any number of devices. BatchNorm-style statistics are per device (as in
plain data parallelism, no SyncBN) and the running averages are averaged across devices.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec as P

from ballot_jax import compiler, metrics
from ballot_jax.engine.mesh import DATA_AXIS, check_divisible, put_batch, to_host
from ballot_jax.engine.model import Model
from ballot_jax.samplers import eval_batches
from ballot_jax.masks import Mask
from ballot_jax.objectives import StatefulObjective
from ballot_jax.optim import FixedMaskState

PyTree = Any
Batch = dict[str, jax.Array]
Objective = Callable[[jax.Array, Batch], jax.Array]


class TrainState(NamedTuple):
    """Everything a run needs to continue: a pytree, checkpointed as one item.

    ``step`` is the position in the learning-rate schedule and in the data stream; the mask lives
    in ``opt_state`` (``FixedMaskState``) so that the jitted step reads it as data.
    """

    step: jax.Array
    params: PyTree
    model_state: PyTree
    opt_state: FixedMaskState
    rng: jax.Array

    @property
    def mask(self) -> Mask:
        return self.opt_state.mask


def reads_through_train(cls: type) -> type:
    """Class decorator for a state that holds a ``TrainState`` in its ``train`` field (and more beside
    it): its ``step``, ``params``, ``model_state`` and ``mask`` are ``train``'s, so that code written
    for a ``TrainState`` (evaluation, logging, resume messages) reads it unchanged."""
    for name in ("step", "params", "model_state", "mask"):
        setattr(cls, name, property(lambda self, name=name: getattr(self.train, name), doc=f"``train.{name}``"))
    return cls


@reads_through_train
class CarriedState(NamedTuple):
    """A ``TrainState`` with the carry of a ``StatefulObjective`` (one checkpointed pytree): the state
    of a phase trained on such an objective."""

    train: TrainState
    carry: PyTree


def mean_cross_entropy(logits: jax.Array, batch: Batch) -> jax.Array:
    """Mean softmax cross-entropy of ``logits`` [B, C] against integer ``batch['y']`` [B]."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()


def group_loss(model: Model) -> Callable[[PyTree, Batch, PyTree], tuple[jax.Array, jax.Array]]:
    """``loss_fn(params, batch, model_state) -> (cross-entropy, accuracy)`` of ``model`` in eval mode
    (BatchNorm statistics frozen): the ``GroupLoss`` of ``ballot_jax.grads`` for an engine model."""

    def loss_fn(params, batch, model_state):
        logits, _ = model.apply(params, model_state, batch["x"], False, jax.random.PRNGKey(0))
        return mean_cross_entropy(logits, batch), jnp.mean(jnp.argmax(logits, -1) == batch["y"])

    return loss_fn


def _gather(tree: PyTree) -> PyTree:
    """Every device's shard of ``tree``, concatenated along the batch axis (inside shard_map).

    Differentiable: each device computes the same global objective, and the transpose sums the
    cotangents of all N copies into each shard, so the local gradient is N x its share of the
    global gradient and ``pmean`` over devices gives exactly the one-device gradient.
    """
    return jax.tree.map(lambda x: jax.lax.all_gather(x, DATA_AXIS, tiled=True), tree)


def _labels(batch: Batch) -> Batch:
    """``batch`` without its inputs: what an objective reads besides the logits."""
    return {k: v for k, v in batch.items() if k != "x"}


def _pcast_varying(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: jax.lax.pcast(x, DATA_AXIS, to="varying"), tree)


def step_rng(state: TrainState) -> jax.Array:
    """This device's key for the step (inside shard_map): a function of (seed, step, device index)."""
    return jax.random.fold_in(jax.random.fold_in(state.rng, state.step), jax.lax.axis_index(DATA_AXIS))


def apply_mean_grads(tx: optax.GradientTransformation, grads: PyTree, opt_state: PyTree, params: PyTree):
    """One ``tx`` step on the device-averaged ``grads`` (inside shard_map): (new params, opt state)."""
    grads = jax.lax.pmean(grads, DATA_AXIS)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def model_update(
    model: Model,
    tx: optax.GradientTransformation,
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    objective: Callable[[jax.Array, Batch], tuple[jax.Array, Any]],
) -> tuple[TrainState, jax.Array, jax.Array, Any]:
    """One optimizer step of the model inside shard_map: ``(next state, loss, accuracy, aux)``.

    ``objective(global logits, global labels) -> (loss, aux)``; the forward pass is in train mode on
    this device's shard of ``batch``. Gradients and model state are averaged over the devices; the
    loss is the global one, ``accuracy`` this shard's (the caller ``pmean``s what it reports).
    """

    def loss_fn(params):
        logits, model_state = model.apply(params, state.model_state, batch["x"], True, rng)
        # The objective sees the global batch (logits and labels gathered from every device), so
        # a non-additive objective (a group-disparity surrogate) is the same on any device count.
        loss, aux = objective(_gather(logits), _gather(_labels(batch)))
        return loss, (logits, model_state, aux)

    (loss, (logits, model_state, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        _pcast_varying(state.params)
    )
    params, opt_state = apply_mean_grads(tx, grads, state.opt_state, state.params)
    model_state = jax.lax.pmean(model_state, DATA_AXIS)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["y"])
    return TrainState(state.step + 1, params, model_state, opt_state, state.rng), loss, accuracy, aux


def shard_step(local_step: Callable, mesh: Mesh) -> Callable:
    """``local_step(state, batch) -> (state, stats)`` jitted and run under ``jax.shard_map`` over
    ``mesh``: state and stats replicated, the batch split along the 'data' axis (compiled with
    :mod:`ballot_jax.compiler`'s options for the mesh's platform)."""
    sharded = jax.shard_map(local_step, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()))
    return compiler.jit(sharded, mesh=mesh)


def make_train_step(
    model: Model,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    objective: Objective | StatefulObjective = mean_cross_entropy,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """``step(state, batch) -> (state, {"loss", "accuracy"})``, jitted and sharded over ``mesh``.

    ``batch`` leaves have a leading batch axis divisible by the number of devices. ``objective`` is
    evaluated on the global batch (logits and labels gathered across devices), so any objective,
    additive or not, gives the one-device result. A ``StatefulObjective`` makes it a step over
    ``CarriedState`` (the train state and the objective's carry, updated every step).
    """

    def reported(loss, accuracy):
        return {"loss": jax.lax.pmean(loss, DATA_AXIS), "accuracy": jax.lax.pmean(accuracy, DATA_AXIS)}

    if isinstance(objective, StatefulObjective):  # the state is a CarriedState

        def carried_step(state: CarriedState, batch: Batch):
            def with_carry(logits, labels):
                return objective.apply(logits, labels, state.carry)

            train, loss, accuracy, carry = model_update(model, tx, state.train, batch, step_rng(state.train), with_carry)
            # every device computed the same carry from the same global batch: pmax makes it replicated, exactly
            carry = jax.tree.map(lambda c: jax.lax.pmax(c, DATA_AXIS), carry)
            return CarriedState(train, carry), reported(loss, accuracy)

        return shard_step(carried_step, mesh)

    def without_aux(logits, labels):
        return objective(logits, labels), None

    def local_step(state: TrainState, batch: Batch):
        state, loss, accuracy, _ = model_update(model, tx, state, batch, step_rng(state), without_aux)
        return state, reported(loss, accuracy)

    return shard_step(local_step, mesh)


def make_predict(model: Model) -> Callable[[PyTree, PyTree, jax.Array], jax.Array]:
    """``predict(params, model_state, x) -> int32 labels [B]`` (eval mode), jitted.

    ``x`` may be sharded over the mesh; XLA partitions the forward pass along the batch.
    """

    def predict(params, model_state, x):
        logits, _ = model.apply(params, model_state, x, False, jax.random.PRNGKey(0))
        return jnp.argmax(logits, -1).astype(jnp.int32)

    return compiler.jit(predict)


@functools.lru_cache(maxsize=32)
def make_logits(model: Model) -> Callable[[PyTree, PyTree, jax.Array], jax.Array]:
    """``logits(params, model_state, x) -> float32 logits [B, C]`` (eval mode), jitted; one per model
    in the process. ``predict_split`` batches it over a split like ``make_predict``'s labels."""

    def logits(params, model_state, x):
        out, _ = model.apply(params, model_state, x, False, jax.random.PRNGKey(0))
        return out.astype(jnp.float32)

    return compiler.jit(logits)


def predict_split(predict, params, model_state, x: np.ndarray, mesh: Mesh, batch_size: int = 512) -> np.ndarray:
    """``predict``'s output (labels, or logits with ``make_logits``) for every row of ``x`` (host
    NumPy, or a tuple of row-aligned arrays that ``predict`` gets batched as a tuple), batched and
    padded to the mesh."""
    n_dev = mesh.devices.size
    batch_size = max(n_dev, batch_size - batch_size % n_dev)
    check_divisible(batch_size, mesh, "eval batch size")
    out = []
    for idx, valid in eval_batches(len(x[0] if isinstance(x, tuple) else x), batch_size):
        xb = put_batch(jax.tree.map(lambda a: a[idx], x), mesh)
        out.append(np.asarray(to_host(predict(params, model_state, xb)))[:valid])
    return np.concatenate(out) if out else np.zeros((0,), np.int32)


def evaluate(
    predict, params, model_state, split, num_classes: int, num_groups: int, mesh: Mesh, batch_size: int = 512
) -> dict[str, Any]:
    """Accuracy and fairness metrics (``metrics.fairness_report``) of a model on a data split.

    Returns plain Python floats (and a list for ``per_group_accuracy``), ready for JSON.
    """
    y_pred = predict_split(predict, params, model_state, split.x, mesh, batch_size)
    report = metrics.fairness_report(
        jnp.asarray(split.y), jnp.asarray(y_pred), jnp.asarray(split.group), num_groups, num_classes
    )
    return {k: (np.asarray(v).tolist()) for k, v in report.items()}
