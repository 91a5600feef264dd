"""Ballot inside a hand-written JAX training loop; the params are a plain dict of arrays.

A 2-layer MLP on a synthetic 3-group problem. The example (1) estimates per-group gradient
statistics over a few group-stratified batches, (2) prunes with Ballot's conflict score, directly
with ``bj.ballot.prune`` and through the optax sparsity updater (the two masks agree), (3) trains
the sparse network with the updater in an ``optax.chain`` and (4) rewinds weights, optimizer state
and step count to an early snapshot (LTH) and retrains. Run: ``python examples/plain_dict.py``
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import ballot_jax as bj

G, DIM, PER_GROUP = 3, 8, 32  # groups, features, examples per group in a stratified batch
SPARSITY, SNAPSHOT_AT, PRUNE_AT, RETRAIN = 0.8, 10, 60, 50


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


def init_params(key, hidden=32):
    k1, k2 = jax.random.split(key)
    return {"hidden": {"kernel": jax.random.normal(k1, (DIM, hidden)) / DIM**0.5, "bias": jnp.zeros(hidden)},
            "out": {"kernel": jax.random.normal(k2, (hidden, 2)) / hidden**0.5, "bias": jnp.zeros(2)}}


def logits_fn(params, x):
    h = jax.nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    return h @ params["out"]["kernel"] + params["out"]["bias"]


def loss_fn(params, batch):  # ONE group's batch -> (loss, accuracy): what per_group_grads vmaps
    logits = logits_fn(params, batch["x"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])


def main(seed: int = 0) -> dict:
    (x, y, groups), (x_test, y_test, g_test) = make_data(seed)
    members = bj.samplers.group_index(groups, G)

    def batch(step, stream=0):  # a group-stratified batch: leaves [G, PER_GROUP, ...]
        idx = bj.samplers.stratified_batch(members, PER_GROUP, seed=1000 * stream + seed, step=step)
        return {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y[idx])}

    predict = jax.jit(lambda params: jnp.argmax(logits_fn(params, x_test), -1))
    group_accuracy = lambda p: bj.accuracy_by_group(y_test, predict(p), g_test, num_groups=G).accuracy  # noqa: E731

    # Clip first: the updater must come last, it returns -w at pruned entries so they land on 0.
    updater = bj.sparsity_updater(optax.sgd(0.1, momentum=0.9), bj.updater.one_shot(SPARSITY, step=PRUNE_AT),
                                  bj.scorers.Conflict())
    tx = optax.chain(optax.clip_by_global_norm(1.0), updater)

    @jax.jit
    def train_step(params, opt_state, batch, group_grads=None):
        # Mean of the G group gradients = gradient of the group-balanced loss (one vmapped pass).
        grads = jax.tree.map(lambda g: g.mean(0), bj.per_group_grads(loss_fn, params, batch).grads)
        extra = {} if group_grads is None else {"group_grads": group_grads}  # the updater waits for these
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state

    params = init_params(jax.random.key(seed))
    opt_state = tx.init(params)
    for step in range(PRUNE_AT):  # dense training; keep a snapshot for rewinding
        if step == SNAPSHOT_AT:
            snapshot = (params, opt_state)
        params, opt_state = train_step(params, opt_state, batch(step))
    dense_acc = group_accuracy(params)

    # 1. Per-group statistics, averaged over 4 stratified batches of a separate stream.
    fn = jax.jit(functools.partial(bj.per_group_grads, loss_fn))
    group_grads = bj.mean_group_grads(fn, params, [batch(s, stream=1) for s in range(4)])

    # 2a. Ballot prune, directly: params + mask + statistics -> a new mask (SPARSITY of the alive go).
    direct_mask = bj.ballot.prune(params, bj.make_mask(params), group_grads, fraction=SPARSITY)
    # 2b. The same through the updater: the first update at count >= PRUNE_AT carrying group_grads.
    pruned_from = params
    params, opt_state = train_step(params, opt_state, batch(PRUNE_AT), group_grads)
    mask = bj.get_mask(opt_state)

    # 3. Masked training: pruned weights stay exactly 0, their momentum too.
    for step in range(PRUNE_AT + 1, PRUNE_AT + RETRAIN):
        params, opt_state = train_step(params, opt_state, batch(step))
    sparse_acc = group_accuracy(params)

    # 4. Rewind weights, optimizer state and step count to the snapshot (mask kept), then retrain.
    sparse_params, count_before_rewind = params, int(bj.updater.sparsity_state(opt_state).count)
    params, opt_state = bj.rewind(opt_state, *snapshot)
    rewound_count = int(bj.updater.sparsity_state(opt_state).count)
    for step in range(SNAPSHOT_AT, SNAPSHOT_AT + RETRAIN):
        params, opt_state = train_step(params, opt_state, batch(step, stream=2))
    rewound_acc = group_accuracy(params)

    report = bj.fairness_report(y_test, predict(params), g_test, num_groups=G, num_classes=2)
    fmt = lambda acc: " ".join(f"{a:.3f}" for a in np.asarray(acc))  # noqa: E731
    print(f"sparsity {float(bj.sparsity(mask)):.3f} (target {SPARSITY}); updater mask == ballot.prune mask: "
          f"{bool(bj.mask_overlap(mask, direct_mask) == 1)}")
    print(f"per-group test accuracy: dense [{fmt(dense_acc)}], sparse [{fmt(sparse_acc)}], "
          f"rewound to step {rewound_count} and retrained [{fmt(rewound_acc)}]")
    print(f"final worst-group accuracy {float(report['worst_group_accuracy']):.3f}, MCD {float(report['mcd']):.3f}")
    return {"sparsity": float(bj.sparsity(mask)), "target_sparsity": SPARSITY, "mask": mask, "params": params,
            "sparse_params": sparse_params, "pruned_from": pruned_from, "snapshot_count": SNAPSHOT_AT,
            "rewound_count": rewound_count, "count_before_rewind": count_before_rewind, "direct_mask": direct_mask,
            "accuracy": {"dense": dense_acc, "sparse": sparse_acc, "rewound": rewound_acc}}


if __name__ == "__main__":
    main()
