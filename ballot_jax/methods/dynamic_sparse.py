"""Dynamic sparse training on the engine, the mechanics SafeCompress runs on.

The mask update itself (drop the smallest |w|, grow as many by a score, per-leaf counts unchanged),
its cosine drop fraction, update steps and counts are the core's ``ballot_jax.drop_grow``; here:
SafeCompress's candidate masks (keep / gradient growth / random growth), continuing training under
a new mask with every grown weight at exactly 0 and without stale optimizer moments, and the
gradient of the training loss on the mesh.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from ballot_jax import compiler
from ballot_jax.engine.loop import TrainConfig, make_optimizer, set_mask
from ballot_jax.engine.mesh import replicated
from ballot_jax.engine.steps import TrainState, mean_cross_entropy
from ballot_jax.drop_grow import drop_and_grow
from ballot_jax.masks import Mask, is_unprunable
from ballot_jax.optim import FixedMaskState
from ballot_jax.pruning import magnitude_scores, uniform_scores

PyTree = Any


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

    return compiler.jit(grad, mesh=mesh, out_shardings=replicated(mesh))
