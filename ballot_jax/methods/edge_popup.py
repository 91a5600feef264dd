"""Edge-popup (Ramanujan et al., CVPR 2020), the score network FairScratch trains: frozen signed
weights, one real score per prunable weight, the top-k of |score| (per layer or global, exactly k
kept) and the straight-through estimator to the scores.

The score network is an engine ``Model`` over ``{"scores", "free", "frozen"}`` (``scored_model``);
``freeze`` gives the frozen weights (and optionally the free params) exactly zero updates through
the masked optimizer; ``sparse_model`` is the final plain model, frozen · top-k mask.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.engine.model import Model
from ballot_jax.engine.steps import TrainState
from ballot_jax.masks import (
    Mask,
    Prunable,
    default_prunable,
    is_unprunable,
    make_mask,
    map_prunable_with_keys,
    mask_leaves,
)
from ballot_jax.optim import with_mask
from ballot_jax.layer_budgets import distribute_keep_counts
from ballot_jax.pruning import flat_prunable, keep_top_k_of_all, num_keep_for_sparsity, unflatten_prunable

PyTree = Any


WEIGHT_INITS = ("signed_kaiming", "signed_std", "init")


def check_weight_init(weight_init: str) -> None:
    """Raise for an unknown ``weight_init``, with a pointer for the renamed "signed_constant"."""
    if weight_init == "signed_constant":
        raise ValueError(
            "weight_init 'signed_constant' was renamed 'signed_std' (sign(w_0)·std of the layer's w_0); "
            "the authors' (edge-popup's) signed constant sign(w_0)·√(2/fan_in) is 'signed_kaiming'"
        )
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")


def fan_in(shape: Sequence[int]) -> int:
    """Product of all kernel dimensions but the last (Dense: inputs; conv HWIO: H·W·I)."""
    return max(1, int(np.prod(shape[:-1])))


def signed_std(params: PyTree, template: Mask) -> PyTree:
    """sign(w)·std(w) per prunable leaf (sign(0) := +1), ``None`` at unprunable leaves."""

    def leaf(m, w):
        if m is None:
            return None
        c = jnp.std(w)
        return jnp.where(w < 0, -c, c).astype(w.dtype)

    return jax.tree.map(leaf, template, params, is_leaf=is_unprunable)


def signed_kaiming(params: PyTree, template: Mask, gain: float = float(np.sqrt(2.0))) -> PyTree:
    """sign(w)·gain/√fan_in per prunable leaf (sign(0) := +1), ``None`` at unprunable leaves."""

    def leaf(m, w):
        if m is None:
            return None
        c = gain / np.sqrt(fan_in(jnp.shape(w)))
        return jnp.where(w < 0, -c, c).astype(w.dtype)

    return jax.tree.map(leaf, template, params, is_leaf=is_unprunable)


def frozen_weights(params: PyTree, template: Mask, weight_init: str, scale: float = 1.0) -> PyTree:
    """The frozen prunable weights of ``weight_init`` (see ``WEIGHT_INITS``) times ``scale``."""
    if weight_init == "signed_kaiming":
        frozen = signed_kaiming(params, template)
    elif weight_init == "signed_std":
        frozen = signed_std(params, template)
    elif weight_init == "init":
        frozen = jax.tree.map(lambda m, p: None if m is None else p, template, params, is_leaf=is_unprunable)
    else:
        check_weight_init(weight_init)
        raise AssertionError(weight_init)  # unreachable: check_weight_init raised
    if scale == 1.0:
        return frozen
    return jax.tree.map(lambda w: (w * scale).astype(w.dtype), frozen)


def init_scores(key: jax.Array, template: Mask) -> PyTree:
    """U(−1/√fan_in, 1/√fan_in) per prunable leaf (fan_in: all kernel dims but the last)."""

    def draw(k, m):
        bound = 1.0 / np.sqrt(fan_in(jnp.shape(m)))
        return jax.random.uniform(k, jnp.shape(m), jnp.float32, -bound, bound)

    return map_prunable_with_keys(draw, key, template)


def keep_counts(template: Mask, sparsity: float, scope: str) -> list[int] | int:
    """Exactly ``num_keep_for_sparsity(N, sparsity)`` in total: one int (global) or per leaf (layer)."""
    sizes = [int(np.size(m)) for m in mask_leaves(template)]
    total = num_keep_for_sparsity(sum(sizes), sparsity)
    if scope == "global":
        return total
    if scope == "layer":
        return distribute_keep_counts(sizes, [1.0] * len(sizes), total)
    raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")


def top_k_mask(scores: PyTree, counts: Sequence[int] | int) -> Mask:
    """Bool mask of the top |score| entries: ``counts`` total (int) or per leaf (list), Python ints.
    Ties go to the lower position in tree-flatten order, as in ``pruning``'s ranking rule. Jit-able."""
    magnitude = jax.tree.map(lambda s: jnp.abs(jax.lax.stop_gradient(s)), scores)
    if isinstance(counts, (int, np.integer)):
        return unflatten_prunable(keep_top_k_of_all(flat_prunable(magnitude, scores), int(counts)), scores)
    leaves, treedef = jax.tree.flatten(magnitude)
    if len(counts) != len(leaves):
        raise ValueError(f"counts has {len(counts)} entries for {len(leaves)} score leaves")
    return jax.tree.unflatten(
        treedef, [keep_top_k_of_all(m.reshape(-1), c).reshape(m.shape) for m, c in zip(leaves, counts)]
    )


def materialise(trainable: PyTree, mask: Mask, straight_through: bool = False) -> PyTree:
    """The plain model's params: frozen·mask at prunable leaves, the free params elsewhere.

    With ``straight_through`` the value is the same but ∂/∂s = ∂/∂(w·m)·w·sign(s) (edge-popup's STE
    through the |s| that ``top_k_mask`` ranks: every step moves |s| in the direction that lowers the
    loss, whatever the sign of s).
    """

    def leaf(m, w, s, f):
        if m is None:
            return f
        w = jax.lax.stop_gradient(w)
        if straight_through:
            a = jnp.abs(s)
            m_ste = jax.lax.stop_gradient(m.astype(w.dtype)) + (a - jax.lax.stop_gradient(a)).astype(w.dtype)
            return w * m_ste
        return jnp.where(m, w, jnp.zeros_like(w))

    flat = lambda t: jax.tree.leaves(t, is_leaf=is_unprunable)  # noqa: E731 (all share one structure)
    m_leaves, treedef = jax.tree.flatten(mask, is_leaf=is_unprunable)
    out = [
        leaf(m, w, s, f)
        for m, w, s, f in zip(m_leaves, flat(trainable["frozen"]), flat(trainable["scores"]), flat(trainable["free"]))
    ]
    return jax.tree.unflatten(treedef, out)


def scored_model(
    model: Model,
    counts: Sequence[int] | int,
    weight_init: str = "signed_kaiming",
    prunable: Prunable = default_prunable,
    scale_fan: bool = False,
) -> Model:
    """The edge-popup network of ``model`` as an engine ``Model`` over ``{"scores", "free", "frozen"}``.

    ``init(rng, x)`` runs ``model.init(rng, x)`` (θ_0) and derives the frozen weights
    (``frozen_weights``; with ``scale_fan`` divided by √(k / N), the kept fraction) and scores;
    ``apply`` materialises frozen·top-k(|scores|) with the straight-through estimator and runs
    ``model.apply`` on it.
    """
    check_weight_init(weight_init)

    def init(rng, x):
        params, model_state = model.init(rng, x)
        template = make_mask(params, prunable)
        scale = 1.0
        if scale_fan:
            total = sum(int(np.size(m)) for m in mask_leaves(template))
            kept = int(np.sum(counts)) if not isinstance(counts, (int, np.integer)) else int(counts)
            scale = float(1.0 / np.sqrt(max(kept, 1) / max(total, 1)))
        frozen = frozen_weights(params, template, weight_init, scale)
        free = jax.tree.map(lambda m, p: p if m is None else None, template, params, is_leaf=is_unprunable)
        scores = init_scores(jax.random.fold_in(rng, 3), template)
        return {"scores": scores, "free": free, "frozen": frozen}, model_state

    def apply(trainable, model_state, x, train, rng):
        mask = top_k_mask(trainable["scores"], counts)
        return model.apply(materialise(trainable, mask, straight_through=True), model_state, x, train, rng)

    return Model(init, apply)


def freeze(state: TrainState, train_unprunable: bool = True) -> TrainState:
    """``state`` whose masked optimizer gives the frozen weights exactly zero updates (mask False).

    With ``train_unprunable=False`` the free params (biases, norm scale/shift) are frozen too, so
    only the scores train (the authors' setting).
    """

    def off(x):
        return jnp.zeros(jnp.shape(x), bool)

    mask = {
        "scores": jax.tree.map(lambda s: None, state.params["scores"]),
        "free": jax.tree.map((lambda f: None) if train_unprunable else off, state.params["free"]),
        "frozen": jax.tree.map(off, state.params["frozen"]),
    }
    return state._replace(opt_state=with_mask(state.opt_state, mask))


def sparse_model(trainable: PyTree, counts: Sequence[int] | int) -> tuple[PyTree, Mask]:
    """The final sparse model of a score network's params: (plain params, top-k mask)."""
    mask = top_k_mask(trainable["scores"], counts)
    return materialise(trainable, mask), mask


def never_prunable(path, leaf) -> bool:
    """The score network's prunable filter: no leaf (its sparsity is the top-k, not a mask)."""
    del path, leaf
    return False
