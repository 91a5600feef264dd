"""Ballot with a ``flax.nnx`` model: ``nnx.split`` gives the params as a State, ``nnx.merge`` applies them.

``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``: ``params`` is an ``nnx.State``, a
pytree with its arrays inside ``Param`` wrappers, and ``make_mask`` mirrors it (a bool array in each
kernel's ``Param``, ``None`` in the biases'). ``rest`` (non-param state such as batch statistics;
empty for this MLP) reaches the loss as an extra argument: ``per_group_grads(loss_fn, params, batch,
rest)``. On a synthetic 3-group problem the example estimates per-group statistics, prunes with
Ballot's conflict score through the optax sparsity updater, trains the sparse network and rewinds
it to an early snapshot. Run: ``python examples/flax_nnx.py``
"""

import functools

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ballot_jax as bj

G, DIM, PER_GROUP = 3, 8, 32  # groups, features, examples per group in a stratified batch
SPARSITY, SNAPSHOT_AT, PRUNE_AT, RETRAIN = 0.75, 10, 60, 50


def make_data(seed=0, sizes=(480, 320, 120)):
    """Group g: features shifted by 0.5 g, label = which side of a group-specific hyperplane."""
    rng = np.random.default_rng(seed)
    shared, parts = rng.normal(size=DIM), []
    for g, n in enumerate(sizes):
        x = rng.normal(size=(n, DIM)).astype(np.float32) + 0.5 * g
        score = x @ (shared + 0.8 * g * rng.normal(size=DIM))
        parts.append((x, (score > np.median(score)).astype(np.int32), np.full(n, g)))
    x, y, g = (np.concatenate(a) for a in zip(*parts))
    train = rng.permutation(len(y)) < len(y) // 2  # half for training, half for evaluation
    return (x[train], y[train], g[train]), (x[~train], y[~train], g[~train])


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, hidden: int = 32):
        self.hidden = nnx.Linear(DIM, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def main(seed: int = 0) -> dict:
    (x, y, groups), (x_test, y_test, g_test) = make_data(seed)
    members = bj.samplers.group_index(groups, G)
    graphdef, params, rest = nnx.split(MLP(nnx.Rngs(seed)), nnx.Param, ...)

    def loss_fn(params, batch, rest):  # ONE group's batch -> (loss, accuracy)
        logits = nnx.merge(graphdef, params, rest)(batch["x"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])

    def batch(step, stream=0):  # a group-stratified batch: leaves [G, PER_GROUP, ...]
        idx = bj.samplers.stratified_batch(members, PER_GROUP, seed=1000 * stream + seed, step=step)
        return {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y[idx])}

    predict = jax.jit(lambda params: jnp.argmax(nnx.merge(graphdef, params, rest)(x_test), -1))
    group_accuracy = lambda p: bj.accuracy_by_group(y_test, predict(p), g_test, num_groups=G).accuracy  # noqa: E731

    # The updater last in the chain: it turns pruned entries' updates into -w so they land on 0.
    tx = optax.chain(optax.clip_by_global_norm(1.0), bj.sparsity_updater(
        optax.sgd(0.1, momentum=0.9), bj.updater.one_shot(SPARSITY, step=PRUNE_AT), bj.scorers.Conflict()))

    @jax.jit
    def train_step(params, opt_state, batch, group_grads=None):
        grads = jax.tree.map(lambda g: g.mean(0), bj.per_group_grads(loss_fn, params, batch, rest).grads)
        extra = {} if group_grads is None else {"group_grads": group_grads}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state  # a new State: params stay functional

    opt_state = tx.init(params)
    for step in range(PRUNE_AT):  # dense training, with a snapshot for rewinding
        if step == SNAPSHOT_AT:
            snapshot = (params, opt_state)
        params, opt_state = train_step(params, opt_state, batch(step))
    dense_acc = group_accuracy(params)

    # 1. Per-group statistics over 4 stratified batches; `rest` rides along as an extra argument.
    fn = jax.jit(functools.partial(bj.per_group_grads, loss_fn))
    group_grads = bj.mean_group_grads(fn, params, [batch(s, stream=1) for s in range(4)], rest)

    # 2. Ballot prune: the first update at count >= PRUNE_AT that carries group_grads.
    pruned_from = params
    params, opt_state = train_step(params, opt_state, batch(PRUNE_AT), group_grads)
    mask = bj.get_mask(opt_state)  # an nnx.State of Param(bool array) / Param(None)

    # 3. Masked training.
    for step in range(PRUNE_AT + 1, PRUNE_AT + RETRAIN):
        params, opt_state = train_step(params, opt_state, batch(step))
    sparse_acc = group_accuracy(params)

    # 4. Rewind to the snapshot (the mask stays), then retrain.
    sparse_params, count_before_rewind = params, int(bj.updater.sparsity_state(opt_state).count)
    params, opt_state = bj.rewind(opt_state, *snapshot)
    rewound_count = int(bj.updater.sparsity_state(opt_state).count)
    for step in range(SNAPSHOT_AT, SNAPSHOT_AT + RETRAIN):
        params, opt_state = train_step(params, opt_state, batch(step, stream=2))
    rewound_acc = group_accuracy(params)

    model = nnx.merge(graphdef, params, rest)  # back to a stateful module, e.g. to save or serve it
    report = bj.fairness_report(y_test, jnp.argmax(model(x_test), -1), g_test, num_groups=G, num_classes=2)
    fmt = lambda acc: " ".join(f"{a:.3f}" for a in np.asarray(acc))  # noqa: E731
    print(f"sparsity {float(bj.sparsity(mask)):.3f} (target {SPARSITY}); zeros in the merged model's hidden "
          f"kernel: {int(jnp.sum(model.hidden.kernel[...] == 0))} of {model.hidden.kernel[...].size}")
    print(f"per-group test accuracy: dense [{fmt(dense_acc)}], sparse [{fmt(sparse_acc)}], "
          f"rewound to step {rewound_count} and retrained [{fmt(rewound_acc)}]; MCD {float(report['mcd']):.3f}")
    return {"sparsity": float(bj.sparsity(mask)), "target_sparsity": SPARSITY, "mask": mask, "params": params,
            "sparse_params": sparse_params, "pruned_from": pruned_from, "snapshot_count": SNAPSHOT_AT,
            "rewound_count": rewound_count, "count_before_rewind": count_before_rewind, "model": model,
            "accuracy": {"dense": dense_acc, "sparse": sparse_acc, "rewound": rewound_acc}}


if __name__ == "__main__":
    main()
