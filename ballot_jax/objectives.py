"""Training objectives with differentiable group-disparity surrogates (jit-able, Flax-free).

An objective is ``objective(logits, batch) -> scalar`` as the engine's train step takes it; ``batch``
holds integer ``y`` and ``group`` ids. Under data parallelism it is evaluated on each device's
shard, so the surrogates are per-shard statistics (exact on one device).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

SURROGATES = ("auto", "dp", "eo", "loss_var", "worst_cell")


# ------------------------------------------------------------------------------------------------
# Fairness surrogate


def _present_range(values: jax.Array, present: jax.Array) -> jax.Array:
    """max − min of ``values`` over ``present`` entries; 0 with fewer than two present."""
    hi = jnp.max(jnp.where(present, values, -jnp.inf))
    lo = jnp.min(jnp.where(present, values, jnp.inf))
    return jnp.where(jnp.sum(present) >= 2, hi - lo, 0.0)


def _group_means(values: jax.Array, groups: jax.Array, weights: jax.Array, num_groups: int):
    total = jax.ops.segment_sum(values * weights, groups, num_segments=num_groups)
    count = jax.ops.segment_sum(weights, groups, num_segments=num_groups)
    return total / jnp.maximum(count, 1e-12), count > 0


def fairness_surrogate(
    logits: jax.Array, batch: dict, num_groups: int, kind: str, temperature: float = 0.5
) -> jax.Array:
    """Differentiable group-disparity penalty of one batch (groups absent from it are ignored).

    "dp": max − min over groups of mean P(y=1 | x) (binary logits [B, 2]); "eo": the same among
    examples with y = 1; "loss_var": population variance over groups of the mean cross-entropy;
    "worst_cell": Σ_c q_c L_c − mean cross-entropy, where L_c is the mean cross-entropy of the
    (group, label) cell c = group · C + y (C = ``logits.shape[-1]``) and q = softmax(L / τ) over the
    cells present, with τ = ``temperature`` and no gradient through q. Its gradient only ever adds
    weight to the high-loss cells (a soft worst-cell, group-DRO-like reweighting); unlike a variance
    of losses it cannot be lowered by making the easy cells worse.
    """
    groups = batch["group"].astype(jnp.int32)
    if kind in ("dp", "eo"):
        if logits.shape[-1] != 2:
            raise ValueError(f"surrogate {kind!r} needs binary targets (2 logits), got {logits.shape[-1]}")
        p1 = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[:, 1]
        weights = jnp.ones_like(p1) if kind == "dp" else (batch["y"] == 1).astype(jnp.float32)
        mean, present = _group_means(p1, groups, weights, num_groups)
        return _present_range(mean, present)
    if kind == "loss_var":
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["y"])
        mean, present = _group_means(ce, groups, jnp.ones_like(ce), num_groups)
        k = jnp.maximum(jnp.sum(present), 1)
        centre = jnp.sum(jnp.where(present, mean, 0.0)) / k
        return jnp.sum(jnp.where(present, (mean - centre) ** 2, 0.0)) / k
    if kind == "worst_cell":
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["y"])
        num_classes = logits.shape[-1]
        cells = groups * num_classes + batch["y"].astype(jnp.int32)
        mean, present = _group_means(ce, cells, jnp.ones_like(ce), num_groups * num_classes)
        q = jax.nn.softmax(jnp.where(present, jax.lax.stop_gradient(mean) / temperature, -jnp.inf))
        return jnp.sum(jnp.where(present, q * mean, 0.0)) - jnp.mean(ce)
    raise ValueError(f"unknown surrogate {kind!r}; expected one of {SURROGATES[1:]}")


def resolve_surrogate(kind: str, num_classes: int) -> str:
    """"auto" -> "dp" for binary targets, "loss_var" otherwise; checks the others."""
    if kind not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")
    if kind == "auto":
        return "dp" if num_classes == 2 else "loss_var"
    if kind in ("dp", "eo") and num_classes != 2:
        raise ValueError(f"surrogate {kind!r} needs binary targets, the dataset has {num_classes} classes")
    return kind


def fair_objective(
    num_groups: int, kind: str, weight: float, temperature: float = 0.5
) -> Callable[[jax.Array, dict], jax.Array]:
    """The engine ``objective``: mean cross-entropy + ``weight`` · ``fairness_surrogate``."""

    def objective(logits, batch):
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        if weight == 0.0:
            return ce
        return ce + weight * fairness_surrogate(logits, batch, num_groups, kind, temperature)

    return objective
