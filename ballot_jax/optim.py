"""Masked optimisation: pruned weights get zero updates, so they stay exactly zero.

``masked(tx, mask)`` wraps any optax transformation. The gradient is masked before the inner
transformation (so momentum and Adam moments of pruned weights stay zero) and the update is masked
after it (so weight decay, or any transformation that reads ``params``, cannot move them). The mask
lives in the optimizer *state*, not in a closure: a jitted train step reads it as data, so changing the
mask (``with_mask``) never recompiles. Params must be masked once when the mask changes
(``apply_mask``); from then on ``optax.apply_updates`` keeps pruned entries at exactly 0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optax

from ballot_jax.masks import Mask, apply_mask

PyTree = Any


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner optimizer's state and the current mask."""

    inner_state: optax.OptState
    mask: Mask


def masked(tx: optax.GradientTransformation, mask: Mask) -> optax.GradientTransformationExtraArgs:
    """Wrap ``tx`` so that entries where ``mask`` is False receive exactly zero updates."""

    def init_fn(params: PyTree) -> MaskedState:
        return MaskedState(tx.init(params), mask)

    def update_fn(updates, state: MaskedState, params=None, **extra_args):
        updates = apply_mask(updates, state.mask)
        new_updates, inner = optax.with_extra_args_support(tx).update(
            updates, state.inner_state, params, **extra_args
        )
        return apply_mask(new_updates, state.mask), MaskedState(inner, state.mask)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def with_mask(state: MaskedState, mask: Mask) -> MaskedState:
    """The same optimizer state with a new mask (no recompilation of a jitted step).

    Moments of newly pruned weights are left as they are: their updates are masked, so they are inert,
    and their gradients are masked, so the moments only decay.
    """
    return MaskedState(state.inner_state, mask)
