"""The engine's view of a model: two pure functions, nothing framework-specific."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

PyTree = Any


class Model(NamedTuple):
    """A model as a pair of pure functions.

    init(rng, x) -> (params, model_state)
        ``x`` is an example batch (only its shape/dtype matter). ``model_state`` holds non-trained
        variables such as BatchNorm statistics (``{}`` when there are none).
    apply(params, model_state, x, train, rng) -> (logits, new_model_state)
        ``train`` is a static Python bool; ``rng`` feeds dropout and may be ignored.
    """

    init: Callable[[jax.Array, jax.Array], tuple[PyTree, PyTree]]
    apply: Callable[[PyTree, PyTree, jax.Array, bool, jax.Array], tuple[jax.Array, PyTree]]
