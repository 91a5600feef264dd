"""Drop and grow at constant per-layer counts (RigL-style dynamic sparse training).

One mask update drops the ``counts[l]`` smallest-|w| active weights of each prunable leaf l and
grows as many by a score (RigL: |∂L/∂w|; random growth: uniform scores), so every leaf keeps its
active count. ``drop_and_grow`` is jit-able (counts may be traced); the schedule helpers (the cosine
drop fraction, the update steps, per-leaf counts from a concrete mask) are host arithmetic. This is
the mask update SafeCompress runs on (``ballot_jax.methods.safecompress``); unlike the sparsity
updater (``ballot_jax.updater``), which only prunes, it regrows weights.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.masks import Mask, is_unprunable, kept_per_leaf, mask_leaves
from ballot_jax.pruning import keep_top_k_per_leaf, magnitude_scores

PyTree = Any


def cosine_drop_fraction(step: int, t_end: int, d0: float, floor: float = 0.0) -> float:
    """d_t = floor + (d0 − floor)(1 + cos(π t / T_end)) / 2 for t ≤ T_end, ``floor`` after.

    ``floor = 0`` is RigL's cosine decay (SafeCompress, our preset); ``floor = 0.005`` is the
    authors' ``CosineDecay`` (PyTorch ``CosineAnnealingLR`` with ``eta_min``).
    """
    if t_end <= 0:
        return floor
    return floor + (d0 - floor) * (1.0 + math.cos(math.pi * min(step, t_end) / t_end)) / 2.0


def update_schedule(budget: int, update_every: int, stop_fraction: float) -> list[int]:
    """Steps at which the mask is updated: multiples of ``update_every`` in (0, stop_fraction·budget]."""
    if update_every < 1:
        raise ValueError(f"update_every must be >= 1, got {update_every}")
    t_end = int(stop_fraction * budget)
    return [t for t in range(update_every, budget, update_every) if t <= t_end]


def drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """k_l = min(round(d·active_l), inactive_l) per prunable leaf (host integers; SafeCompress, ours)."""
    sizes = [int(np.size(m)) for m in mask_leaves(mask)]
    return [min(round(drop_fraction * a), n - a) for a, n in zip(kept_per_leaf(mask), sizes)]


def ceil_drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """k_l = ceil(d·active_l) per prunable leaf (SafeCompress's authors: their ``magnitude_death``)."""
    return [min(math.ceil(drop_fraction * a), a) for a in kept_per_leaf(mask)]


def _invert(mask: Mask) -> Mask:
    return jax.tree.map(lambda m: None if m is None else jnp.logical_not(m), mask, is_leaf=is_unprunable)


def magnitude_kept(params: PyTree, mask: Mask, counts: Sequence[Any]) -> Mask:
    """The drop: of leaf l's active weights, all but the ``counts[l]`` smallest |w|. Jit-able."""
    keep = jnp.stack([jnp.sum(m, dtype=jnp.int32) - jnp.asarray(k, jnp.int32)
                      for m, k in zip(mask_leaves(mask), counts)])
    return keep_top_k_per_leaf(magnitude_scores(params, mask), mask, keep)


def drop_and_grow(
    params: PyTree, mask: Mask, grow_scores: PyTree, counts: Sequence[Any], regrow_dropped: bool = False
) -> Mask:
    """Drop ``counts[l]`` smallest-|w| active entries of leaf l, grow ``counts[l]`` best-scoring ones;
    per-leaf active counts are unchanged. Jit-able (``counts`` may be traced).

    Growth is among the entries inactive before the update (``regrow_dropped=False``), or among all
    entries inactive after the drop, the just-dropped ones included (``True``: a dropped weight that
    is regrown simply stays, as SafeCompress's authors' code does). ``grow_scores`` has the mask's
    structure (``None`` at unprunable leaves), higher = grow first; ties by position.
    """
    kept = magnitude_kept(params, mask, counts)
    allowed = _invert(kept) if regrow_dropped else _invert(mask)
    grown = keep_top_k_per_leaf(grow_scores, allowed, jnp.stack([jnp.asarray(k, jnp.int32) for k in counts]))
    return jax.tree.map(lambda a, b: None if a is None else a | b, kept, grown, is_leaf=is_unprunable)


def regrown_dropped(params: PyTree, mask: Mask, new_mask: Mask, counts: Sequence[int]) -> int:
    """How many of the weights an update dropped (``counts``) its growth took back into ``new_mask``."""
    kept = magnitude_kept(params, mask, counts)
    return sum(
        int(np.sum(np.asarray(new) & np.asarray(old) & ~np.asarray(by_magnitude)))
        for new, old, by_magnitude in zip(mask_leaves(new_mask), mask_leaves(mask), mask_leaves(kept))
    )


__all__ = [
    "ceil_drop_counts",
    "cosine_drop_fraction",
    "drop_and_grow",
    "drop_counts",
    "magnitude_kept",
    "regrown_dropped",
    "update_schedule",
]
