"""Batch index samplers: pure functions of (seed, step), so a resumed run sees the same batches.

Every process of a multi-host run computes the same global indices and keeps its own slice.
"""

from __future__ import annotations

import functools

import numpy as np


def shuffled_batch(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices [batch_size] of batch ``step``: epochs are fresh permutations, the remainder dropped."""
    if batch_size > num_examples:
        raise ValueError(f"batch size {batch_size} exceeds the {num_examples} training examples")
    per_epoch = num_examples // batch_size
    epoch, offset = divmod(step, per_epoch)
    return epoch_permutation(num_examples, seed, epoch)[offset * batch_size : (offset + 1) * batch_size]


@functools.lru_cache(maxsize=4)
def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of epoch ``epoch`` (read-only; cached: computed once per epoch, not per step)."""
    perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
    perm.flags.writeable = False
    return perm


def group_index(groups: np.ndarray, num_groups: int) -> list[np.ndarray]:
    """Indices of each group's examples; raises if a group is empty (it cannot be sampled)."""
    groups = np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in range(num_groups)]
    empty = [g for g, m in enumerate(members) if m.size == 0]
    if empty:
        raise ValueError(f"cannot stratify: groups {empty} have no examples in this split")
    return members


def stratified_batch(members: list[np.ndarray], per_group: int, seed: int, step: int) -> np.ndarray:
    """Indices [G, per_group]: equal examples from every group (with replacement for small groups).

    ``members`` comes from :func:`group_index`. Within an epoch-like cycle a large group is sampled
    without replacement; a group smaller than ``per_group`` is sampled with replacement.
    """
    rows = []
    for g, idx in enumerate(members):
        rng = np.random.default_rng([seed, step, g])
        rows.append(rng.choice(idx, size=per_group, replace=idx.size < per_group))
    return np.stack(rows)


def eval_batches(num_examples: int, batch_size: int) -> list[tuple[np.ndarray, int]]:
    """Consecutive (indices padded to ``batch_size``, number of real rows) covering every example."""
    out = []
    for start in range(0, num_examples, batch_size):
        idx = np.arange(start, min(start + batch_size, num_examples))
        valid = idx.size
        if valid < batch_size:
            idx = np.concatenate([idx, np.zeros(batch_size - valid, idx.dtype)])
        out.append((idx, valid))
    return out
