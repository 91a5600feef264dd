"""Dynamic sparse training at constant per-layer counts (RigL-style), the mechanics SafeCompress runs on.

The cosine drop fraction and the steps of the mask updates; per-layer drop counts; one update (drop
the smallest |w|, grow as many by a score); and continuing training under the new mask with every
grown weight at exactly 0 and without stale optimizer moments. Pure functions of masks, params and
scores (counts are host integers), tested on their own.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ballot_jax.engine.loop import TrainConfig, make_optimizer, set_mask
from ballot_jax.engine.mesh import replicated
from ballot_jax.engine.steps import TrainState, mean_cross_entropy
from ballot_jax.masks import Mask, is_unprunable, mask_leaves
from ballot_jax.optim import FixedMaskState
from ballot_jax.pruning import keep_top_k_per_leaf, magnitude_scores, uniform_scores

PyTree = Any


def cosine_drop_fraction(step: int, t_end: int, d0: float, floor: float = 0.0) -> float:
    """d_t = floor + (d0 − floor)(1 + cos(π t / T_end)) / 2 for t ≤ T_end, ``floor`` after.

    ``floor = 0`` is RigL's cosine decay (our preset); ``floor = 0.005`` is the authors'
    ``CosineDecay`` (PyTorch ``CosineAnnealingLR`` with ``eta_min``).
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


def active_counts(mask: Mask) -> list[int]:
    """Active (kept) weights per prunable leaf, host integers."""
    return [int(np.sum(np.asarray(m))) for m in mask_leaves(mask)]


def drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """Our preset: k_l = min(round(d·active_l), inactive_l) per prunable leaf (host integers)."""
    sizes = [int(np.size(m)) for m in mask_leaves(mask)]
    return [min(round(drop_fraction * a), n - a) for a, n in zip(active_counts(mask), sizes)]


def ceil_drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """The authors' preset: k_l = ceil(d·active_l) per prunable leaf (their ``magnitude_death``)."""
    return [min(math.ceil(drop_fraction * a), a) for a in active_counts(mask)]


def _invert(mask: Mask) -> Mask:
    return jax.tree.map(lambda m: None if m is None else jnp.logical_not(m), mask, is_leaf=is_unprunable)


def magnitude_kept(params: PyTree, mask: Mask, counts: Sequence[int]) -> Mask:
    """The drop: of leaf l's active weights, all but the ``counts[l]`` smallest |w| (before growth)."""
    keep = jnp.asarray([a - k for a, k in zip(active_counts(mask), counts)], jnp.int32)
    return keep_top_k_per_leaf(magnitude_scores(params, mask), mask, keep)


def drop_and_grow(
    params: PyTree, mask: Mask, grow_scores: PyTree, counts: Sequence[int], regrow_dropped: bool = False
) -> Mask:
    """Drop ``counts[l]`` smallest-|w| active entries of leaf l, grow ``counts[l]`` best-scoring ones;
    per-leaf active counts are unchanged.

    Growth is among the entries inactive before the update (``regrow_dropped=False``, our preset), or
    among all entries inactive after the drop, the just-dropped ones included (``True``, the authors'
    code: a dropped weight that is regrown simply stays). ``grow_scores`` has the mask's structure
    (``None`` at unprunable leaves), higher = grow first; ties by position.
    """
    kept = magnitude_kept(params, mask, counts)
    allowed = _invert(kept) if regrow_dropped else _invert(mask)
    grown = keep_top_k_per_leaf(grow_scores, allowed, jnp.asarray(list(counts), jnp.int32))
    return jax.tree.map(lambda a, b: None if a is None else a | b, kept, grown, is_leaf=is_unprunable)


def regrown_dropped(params: PyTree, mask: Mask, new_mask: Mask, counts: Sequence[int]) -> int:
    """How many of the weights an update dropped (``counts``) its growth took back into ``new_mask``."""
    kept = magnitude_kept(params, mask, counts)
    return sum(
        int(np.sum(np.asarray(new) & np.asarray(old) & ~np.asarray(by_magnitude)))
        for new, old, by_magnitude in zip(mask_leaves(new_mask), mask_leaves(mask), mask_leaves(kept))
    )


def candidate_masks(
    params: PyTree, mask: Mask, grads: PyTree, counts: Sequence[int], kinds: Sequence[str], key: jax.Array
) -> list[Mask]:
    """Our preset's candidates, one per kind: "keep" (the mask as it is), "gradient" (growth by
    |∂CE/∂w|, RigL) or "random" (growth by uniform scores from ``fold_in(key, i)``, i its position)."""
    out = []
    for i, kind in enumerate(kinds):
        if kind == "keep":
            out.append(mask)
            continue
        if kind == "gradient":
            scores = magnitude_scores(grads, mask)  # |∂CE/∂w| at the prunable leaves
        else:
            scores = uniform_scores(jax.random.fold_in(key, i), mask)
        out.append(drop_and_grow(params, mask, scores, counts))
    return out


def start_with_mask(state: TrainState, mask: Mask, config: TrainConfig) -> TrainState:
    """``state`` continuing under ``mask``: dropped weights zeroed (``set_mask``) and the optimizer
    moments of newly grown weights zeroed, so a grown weight starts at exactly 0 with no stale
    momentum. Step, schedule position and the other moments are unchanged."""
    regrown = jax.tree.map(
        lambda new, old, p: jnp.zeros(jnp.shape(p), bool) if new is None else new & ~old,
        mask, state.mask, state.params, is_leaf=is_unprunable,
    )
    inner = optax.tree_utils.tree_map_params(
        make_optimizer(config),
        lambda x, r: jnp.where(r, jnp.zeros_like(x), x),
        state.opt_state.inner_state,
        regrown,
        transform_non_params=lambda x: x,
    )
    state = state._replace(opt_state=FixedMaskState(inner, state.opt_state.mask))
    return set_mask(state, mask)


def make_grad_fn(model, mesh):
    """``grad(params, model_state, batch, rng)``: ∂(mean cross-entropy)/∂params on a global batch
    (train-mode forward; XLA splits the batch over the mesh), replicated."""

    def grad(params, model_state, batch, rng):
        def loss(p):
            logits, _ = model.apply(p, model_state, batch["x"], True, rng)
            return mean_cross_entropy(logits, batch)

        return jax.grad(loss)(params)

    return jax.jit(grad, out_shardings=replicated(mesh))
