"""Ballot with a ``flax.linen`` model: a tiny CNN whose params come from ``model.init(...)["params"]``.

That params dict is an ordinary pytree: ``make_mask`` prunes the conv kernel [3, 3, in, out] and the
dense kernel [in, out] (every leaf with ndim > 1) and keeps the biases dense. On a synthetic 3-group
problem (4x4 one-channel images) the example (1) estimates per-group gradient statistics, (2) prunes
with Ballot's conflict score through the optax sparsity updater, (3) trains the sparse network and
(4) rewinds it to an early snapshot and retrains. Run: ``python examples/flax_linen.py``
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ballot_jax as bj

G, DIM, PER_GROUP = 3, 16, 32  # groups, features (a 4x4 image), examples per group in a batch
SPARSITY, SNAPSHOT_AT, PRUNE_AT, RETRAIN = 0.7, 10, 60, 50


def make_data(seed=0, sizes=(480, 320, 120)):
    """Group g: pixels shifted by 0.5 g, label = which side of a group-specific hyperplane."""
    rng = np.random.default_rng(seed)
    shared, parts = rng.normal(size=DIM), []
    for g, n in enumerate(sizes):
        x = rng.normal(size=(n, DIM)).astype(np.float32) + 0.5 * g
        score = x @ (shared + 0.8 * g * rng.normal(size=DIM))
        parts.append((x, (score > np.median(score)).astype(np.int32), np.full(n, g)))
    x, y, g = (np.concatenate(a) for a in zip(*parts))
    x = x.reshape(-1, 4, 4, 1)  # NHWC images
    train = rng.permutation(len(y)) < len(y) // 2  # half for training, half for evaluation
    return (x[train], y[train], g[train]), (x[~train], y[~train], g[~train])


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        return nn.Dense(2)(x.reshape(*x.shape[:-3], -1))


model = CNN()


def loss_fn(params, batch):  # ONE group's batch -> (loss, accuracy)
    logits = model.apply({"params": params}, batch["x"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])


def main(seed: int = 0) -> dict:
    (x, y, groups), (x_test, y_test, g_test) = make_data(seed)
    members = bj.samplers.group_index(groups, G)

    def batch(step, stream=0):  # leaves [G, PER_GROUP, 4, 4, 1] and [G, PER_GROUP]
        idx = bj.samplers.stratified_batch(members, PER_GROUP, seed=1000 * stream + seed, step=step)
        return {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y[idx])}

    predict = jax.jit(lambda params: jnp.argmax(model.apply({"params": params}, x_test), -1))
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

    params = model.init(jax.random.key(seed), x[:1])["params"]
    opt_state = tx.init(params)
    for step in range(PRUNE_AT):  # dense training, with a snapshot for rewinding
        if step == SNAPSHOT_AT:
            snapshot = (params, opt_state)
        params, opt_state = train_step(params, opt_state, batch(step))
    dense_acc = group_accuracy(params)

    # 1. Per-group statistics over 4 stratified batches (on CPU the conv loss runs the G groups
    #    one after the other inside the compiled program instead of vmapping them: same numbers).
    fn = jax.jit(functools.partial(bj.per_group_grads, loss_fn))
    group_grads = bj.mean_group_grads(fn, params, [batch(s, stream=1) for s in range(4)])

    # 2. Ballot prune: the first update at count >= PRUNE_AT that carries group_grads.
    pruned_from = params
    params, opt_state = train_step(params, opt_state, batch(PRUNE_AT), group_grads)
    mask = bj.get_mask(opt_state)

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
    per_layer = {k: round(v["sparsity"], 3) for k, v in bj.sparsity_summary(mask)["per_leaf"].items()}
    print(f"sparsity {float(bj.sparsity(mask)):.3f} (target {SPARSITY}); per layer {per_layer}")
    print(f"per-group test accuracy: dense [{fmt(dense_acc)}], sparse [{fmt(sparse_acc)}], "
          f"rewound to step {rewound_count} and retrained [{fmt(rewound_acc)}]")
    return {"sparsity": float(bj.sparsity(mask)), "target_sparsity": SPARSITY, "mask": mask, "params": params,
            "sparse_params": sparse_params, "pruned_from": pruned_from, "snapshot_count": SNAPSHOT_AT,
            "rewound_count": rewound_count, "count_before_rewind": count_before_rewind,
            "accuracy": {"dense": dense_acc, "sparse": sparse_acc, "rewound": rewound_acc}}


if __name__ == "__main__":
    main()
