"""Ballot with an ``equinox`` model: ``eqx.partition`` gives the params, ``eqx.combine`` applies them.

``eqx.partition(model, eqx.is_inexact_array)`` keeps the float arrays (``None`` elsewhere);
``make_mask`` prunes the ``Linear.weight`` matrices and keeps the biases dense. Equinox weights are
[out, in] (Flax: [in, out]); only the authors' vote cares (it normalises per input column), hence
its ``output_axis=0``. On a synthetic 3-group problem: per-group statistics, a Ballot prune through
the optax sparsity updater (beside one authors' vote), sparse training, rewind. Run it as a script.
"""

import functools

import equinox as eqx
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


class MLP(eqx.Module):
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, key, hidden: int = 32):
        k1, k2 = jax.random.split(key)
        self.hidden, self.out = eqx.nn.Linear(DIM, hidden, key=k1), eqx.nn.Linear(hidden, 2, key=k2)

    def __call__(self, x):  # one example; vmap for a batch
        return self.out(jax.nn.relu(self.hidden(x)))


def main(seed: int = 0, model: eqx.Module | None = None) -> dict:
    """``model``: any Equinox classifier of DIM features (e.g. ``eqx.nn.MLP``); default: MLP above."""
    (x, y, groups), (x_test, y_test, g_test) = make_data(seed)
    members = bj.samplers.group_index(groups, G)
    params, static = eqx.partition(MLP(jax.random.key(seed)) if model is None else model, eqx.is_inexact_array)

    def loss_fn(params, batch):  # ONE group's batch -> (loss, accuracy)
        logits = jax.vmap(eqx.combine(params, static))(batch["x"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])

    def batch(step, stream=0):  # a group-stratified batch: leaves [G, PER_GROUP, ...]
        idx = bj.samplers.stratified_batch(members, PER_GROUP, seed=1000 * stream + seed, step=step)
        return {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y[idx])}

    predict = jax.jit(lambda params: jnp.argmax(jax.vmap(eqx.combine(params, static))(x_test), -1))
    group_accuracy = lambda p: bj.accuracy_by_group(y_test, predict(p), g_test, num_groups=G).accuracy  # noqa: E731

    # The updater last in the chain: it turns pruned entries' updates into -w so they land on 0.
    tx = optax.chain(optax.clip_by_global_norm(1.0), bj.sparsity_updater(
        optax.sgd(0.1, momentum=0.9), bj.updater.one_shot(SPARSITY, step=PRUNE_AT), bj.scorers.Conflict()))

    @jax.jit
    def train_step(params, opt_state, batch, group_grads=None):
        grads = jax.tree.map(lambda g: g.mean(0), bj.per_group_grads(loss_fn, params, batch).grads)
        extra = {} if group_grads is None else {"group_grads": group_grads}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for step in range(PRUNE_AT):  # dense training, with a snapshot for rewinding
        if step == SNAPSHOT_AT:
            snapshot = (params, opt_state)
        params, opt_state = train_step(params, opt_state, batch(step))
    dense_acc = group_accuracy(params)

    # 1. Per-group statistics over 4 stratified batches.
    fn = jax.jit(functools.partial(bj.per_group_grads, loss_fn))
    group_grads = bj.mean_group_grads(fn, params, [batch(s, stream=1) for s in range(4)])

    # 2. Ballot prune: the first update at count >= PRUNE_AT that carries group_grads.
    pruned_from = params
    params, opt_state = train_step(params, opt_state, batch(PRUNE_AT), group_grads)
    mask = bj.get_mask(opt_state)

    # For comparison, one point of the authors' vote: accuracy gradient (groups averaged) and
    # fairness gradient (group g weighted by 1/accuracy_g). vote_scores normalises each INPUT column
    # over the OUTPUT axis; an Equinox weight is [out, in], so that axis is 0 (Flax's [in, out]: -1).
    acc_grad = jax.tree.map(lambda g: g.mean(0), group_grads.grads)
    w = bj.vote.group_weights(group_grads.accuracy) / G
    fair_grad = jax.tree.map(lambda g: jnp.tensordot(w, g, axes=1), group_grads.grads)
    scores = bj.vote.vote_scores(pruned_from, bj.make_mask(pruned_from), acc_grad, fair_grad, output_axis=0)
    vote = bj.vote.cast_votes(scores, bj.make_mask(pruned_from), bj.num_kept(mask))

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

    fmt = lambda acc: " ".join(f"{a:.3f}" for a in np.asarray(acc))  # noqa: E731
    print(f"sparsity {float(bj.sparsity(mask)):.3f} (target {SPARSITY}); overlap of Ballot's mask with one "
          f"authors' vote: {float(bj.mask_overlap(mask, vote)):.3f}")
    print(f"per-group test accuracy: dense [{fmt(dense_acc)}], sparse [{fmt(sparse_acc)}], "
          f"rewound to step {rewound_count} and retrained [{fmt(rewound_acc)}]")
    return {"sparsity": float(bj.sparsity(mask)), "target_sparsity": SPARSITY, "mask": mask, "params": params,
            "sparse_params": sparse_params, "pruned_from": pruned_from, "snapshot_count": SNAPSHOT_AT,
            "rewound_count": rewound_count, "count_before_rewind": count_before_rewind,
            "vote": vote, "vote_inputs": (acc_grad, fair_grad),
            "accuracy": {"dense": dense_acc, "sparse": sparse_acc, "rewound": rewound_acc}}


if __name__ == "__main__":
    main()
