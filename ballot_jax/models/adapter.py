"""Adapt a Flax linen module to the engine's :class:`ballot_jax.engine.model.Model`.

The module must be called as ``module.apply(variables, x, train=bool)``. The returned functions
are pure (no Python state), so they can be used under ``jax.jit``, ``jax.vmap`` and ``jax.grad``;
``train`` must be a static Python bool.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import linen as nn

from ballot_jax.engine.model import Model

PyTree = Any


def as_engine_model(module: nn.Module, mutable: Sequence[str] = ("batch_stats",)) -> Model:
    """Wrap ``module`` as ``Model(init, apply)``.

    ``init(rng, x) -> (params, model_state)``: ``params`` is ``variables["params"]``;
    ``model_state`` is every other collection (e.g. ``{"batch_stats": ...}``), ``{}`` if none.

    ``apply(params, model_state, x, train, rng) -> (logits, new_model_state)``: in train mode the
    collections of ``model_state`` named in ``mutable`` (BatchNorm's ``batch_stats``) are updated
    and returned; in eval mode, or when there are none, ``model_state`` is returned unchanged (the
    same object). ``rng`` feeds the ``"dropout"`` stream and may be ``None``.
    """
    mutable = tuple(mutable)

    def init(rng: jax.Array, x: jax.Array) -> tuple[PyTree, PyTree]:
        params_rng, dropout_rng = jax.random.split(rng)
        variables = module.init({"params": params_rng, "dropout": dropout_rng}, x, train=False)
        variables = dict(variables)
        params = variables.pop("params", {})
        return params, variables

    def apply(
        params: PyTree, model_state: PyTree, x: jax.Array, train: bool, rng: jax.Array | None
    ) -> tuple[jax.Array, PyTree]:
        variables = {"params": params, **model_state}
        rngs = {"dropout": rng} if rng is not None else {}
        to_update = [c for c in mutable if c in model_state] if train else []
        if to_update:
            logits, updates = module.apply(variables, x, train=True, rngs=rngs, mutable=to_update)
            return logits, {**model_state, **updates}
        logits = module.apply(variables, x, train=train, rngs=rngs)
        return logits, model_state

    return Model(init=init, apply=apply)
