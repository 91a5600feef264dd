"""Training under a fixed mask: pruned weights get zero updates, so they stay exactly zero.

``fixed_mask(tx, mask)`` wraps any optax transformation (named so as not to be confused with
``optax.masked``, which selects the params a transformation applies to). The gradient is masked
before the inner transformation (so momentum and Adam moments of pruned weights stay zero) and the
update is masked after it (so weight decay, or any transformation that reads ``params``, cannot move
them). The mask lives in the optimizer *state*, not in a closure: a jitted train step reads it as
data, so changing the mask (``with_mask``, which finds the state inside any chain) never recompiles.
Params must be masked once when the mask changes (``apply_mask``); from then on
``optax.apply_updates`` keeps pruned entries at exactly 0. For a mask that changes on a schedule
inside the optimizer, see ``ballot_jax.updater.sparsity_updater``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optax

from ballot_jax.masks import Mask, apply_mask

PyTree = Any


class FixedMaskState(NamedTuple):
    """State of :func:`fixed_mask`: the inner optimizer's state and the current mask."""

    inner_state: optax.OptState
    mask: Mask


def fixed_mask(tx: optax.GradientTransformation, mask: Mask) -> optax.GradientTransformationExtraArgs:
    """Wrap ``tx`` so that entries where ``mask`` is False receive exactly zero updates."""

    def init_fn(params: PyTree) -> FixedMaskState:
        return FixedMaskState(tx.init(params), mask)

    def update_fn(updates, state: FixedMaskState, params=None, **extra_args):
        updates = apply_mask(updates, state.mask)
        new_updates, inner = optax.with_extra_args_support(tx).update(
            updates, state.inner_state, params, **extra_args
        )
        return apply_mask(new_updates, state.mask), FixedMaskState(inner, state.mask)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def with_mask(opt_state: PyTree, mask: Mask) -> PyTree:
    """``opt_state`` with a new mask in its ``FixedMaskState`` (found inside any chain; no
    recompilation of a jitted step). ``ValueError`` if there is none.

    Moments of newly pruned weights are left as they are: their updates are masked, so they are inert,
    and their gradients are masked, so the moments only decay.
    """
    if isinstance(opt_state, FixedMaskState):
        return FixedMaskState(opt_state.inner_state, mask)
    found = optax.tree_utils.tree_get(opt_state, "FixedMaskState")
    if found is None:
        raise ValueError("no FixedMaskState in this optimizer state: build the optimizer with fixed_mask")
    return optax.tree_utils.tree_set(opt_state, FixedMaskState=FixedMaskState(found.inner_state, mask))
