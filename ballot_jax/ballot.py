"""Ballot's conflict-detection-based subnetwork selection, as pure functions on pytrees.

Our reconstruction of the paper's description (see docs/method.md for the reasoning). For every
prunable weight w_i and group g, from B stratified batches with per-batch group gradients
g_{g,i,b} = ∂L_{g,b}/∂w_i, their mean ḡ_{g,i}, and the group losses L_g (mean L̄):

    I_{g,i} = ½ · mean_b (w_i · g_{g,i,b})²        removal cost for group g (Taylor/Fisher saliency ≥ 0)
    Iᵃ_i    = (1/G) Σ_g I_{g,i}                     ... for the group-balanced loss (accuracy)
    Iᶠ_i    = (2/G) Σ_g (L_g − L̄) · I_{g,i}        ... for the disparity D = Var_g(L_g) (fairness):
                                                    > 0 if w_i matters most to worse-off groups
    a_i     = | (1/G) Σ_g sign(ḡ_{g,i}) |            group agreement in [0, 1] (AND-mask style)
    conflict_i = [Iᶠ_i < 0]                          keeping w_i serves better-off groups: it helps
                                                    accuracy but widens the gap

The keep score blends the two, trusting the accuracy cost where the groups pull w_i the same way
and the fairness cost where they pull it apart:

    z_i = a_i · Iᵃ_i / σᵃ + λ · (1 − a_i) · Iᶠ_i / σᶠ     (σ: RMS over alive prunable weights)
    s_i = |w_i| · exp(β · tanh(z_i))

so a weight whose removal would widen the gap between groups is kept, one whose removal would narrow
it is pruned first, and the magnitude prior bounds how far the statistics can reorder weights (a
factor in [e^−β, e^β]). Ablations: ``use_magnitude=False`` sets |w_i| to 1, ``use_agreement=False``
sets a_i to 1/2, ``use_direction=False`` drops the fairness cost (Iᶠ := 0).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.grads import GroupGrads
from ballot_jax.masks import Mask, check_mask, is_unprunable, mask_leaves
from ballot_jax.pruning import Scope, check_no_nan
from ballot_jax.tracing import is_traced
from ballot_jax.pruning import prune as prune_by_score

PyTree = Any


@dataclasses.dataclass(frozen=True)
class BallotConfig:
    """The score's switches and strengths (defaults as in docs/method.md)."""

    use_magnitude: bool = True
    use_agreement: bool = True
    use_direction: bool = True
    fairness_weight: float = 1.0  # λ
    strength: float = 1.0  # β


class ConflictStats(NamedTuple):
    """Per-weight statistics, each a tree with the mask's structure (``None`` at unprunable leaves)."""

    accuracy_cost: PyTree  # Iᵃ
    fairness_cost: PyTree  # Iᶠ
    agreement: PyTree  # a
    conflict: PyTree  # bool


def _map(fn, mask, *trees):
    return jax.tree.map(lambda m, *xs: None if m is None else fn(m, *xs), mask, *trees, is_leaf=is_unprunable)


def _prunable_only(tree: PyTree, mask: Mask) -> PyTree:
    """``tree`` restricted to the mask's prunable leaves (``None`` elsewhere), mask structure."""
    return _map(lambda m, x: x, mask, tree)


@jax.jit
def conflict_stats(params: PyTree, mask: Mask, group_grads: GroupGrads) -> ConflictStats:
    """Iᵃ, Iᶠ, agreement and conflict for every prunable weight. Jit-able.

    ``group_grads`` leaves have the params' shapes with a leading [G] axis; ``loss`` is [G].
    """
    losses = group_grads.loss
    deviation = losses - jnp.mean(losses)
    num_groups = losses.shape[0]
    grads = _prunable_only(group_grads.grads, mask)
    sq_grads = _prunable_only(group_grads.mean_sq_grads(), mask)  # squared here: fused below
    weights = _prunable_only(params, mask)

    def stats(m, w, g, g2):
        cost = jnp.where(m[None], 0.5 * jnp.square(w)[None] * g2, 0.0)  # I_{g,i}: [G, ...]
        acc = jnp.mean(cost, axis=0)
        fair = (2.0 / num_groups) * jnp.tensordot(deviation, cost, axes=1)
        agreement = jnp.where(m, jnp.abs(jnp.mean(jnp.sign(g), axis=0)), 0.0)
        # Conflict needs Iᶠ clearly below 0: round-off of an exactly balanced sum must not count.
        tol = 1e-6 * jnp.max(jnp.abs(deviation)) * jnp.sum(cost, axis=0)
        return acc, fair, agreement, fair < -tol

    per_leaf = _map(stats, mask, weights, grads, sq_grads)
    pick = lambda i: _map(lambda m, t: t[i], mask, per_leaf)  # noqa: E731
    return ConflictStats(pick(0), pick(1), pick(2), pick(3))


def _rms(tree: PyTree, mask: Mask) -> jax.Array:
    leaves = [jnp.where(m, x, 0.0) for m, x in zip(mask_leaves(mask), mask_leaves(tree))]
    total = sum(jnp.sum(x * x) for x in leaves)
    count = sum(jnp.sum(m) for m in mask_leaves(mask))
    return jnp.sqrt(total / jnp.maximum(count, 1))


def _normalise(tree: PyTree, mask: Mask) -> PyTree:
    scale = _rms(tree, mask)
    return _map(lambda m, x: jnp.where(scale > 0, x / jnp.where(scale > 0, scale, 1.0), 0.0), mask, tree)


def scores(params: PyTree, mask: Mask, stats: ConflictStats, config: BallotConfig = BallotConfig()) -> PyTree:
    """Keep scores s_i (higher = keep), mask structure. Jit-able for a fixed ``config``."""
    return _scores(params, mask, stats, config)


@functools.partial(jax.jit, static_argnames="config")
def _scores(params, mask, stats, config):
    acc = _normalise(stats.accuracy_cost, mask)
    fair = _normalise(stats.fairness_cost, mask)
    weights = _prunable_only(params, mask)

    def score(m, w, a_cost, f_cost, agree):
        a = agree if config.use_agreement else jnp.full_like(agree, 0.5)
        f = f_cost if config.use_direction else jnp.zeros_like(f_cost)
        z = a * a_cost + config.fairness_weight * (1.0 - a) * f
        magnitude = jnp.abs(w) if config.use_magnitude else jnp.ones_like(w)
        return magnitude * jnp.exp(config.strength * jnp.tanh(z))

    return _map(score, mask, weights, acc, fair, stats.agreement)


def prune(
    params: PyTree,
    mask: Mask,
    group_grads: GroupGrads,
    fraction: float,
    config: BallotConfig = BallotConfig(),
    *,
    scope: Scope = "global",
) -> Mask:
    """One Ballot pruning step: conflict statistics → scores → remove ``fraction`` of the remaining
    weights (exact count, never reviving). Usable inside any training loop, and under ``jax.jit``
    (then counts are traced, see ``ballot_jax.pruning``, and nothing that needs a value is checked).

    Raises ``ValueError`` when ``mask`` does not fit ``params`` (``check_mask``), when a group loss
    is NaN (naming the group), or when an alive weight or score is NaN (naming the leaf).
    """
    check_mask(params, mask)
    if not is_traced(params, mask, group_grads):
        check_no_nan(params, mask, "weight")
        nan_groups = np.flatnonzero(np.isnan(np.asarray(jax.device_get(group_grads.loss)))).tolist()
        if nan_groups:
            raise ValueError(f"NaN group loss for group(s) {nan_groups} (did training diverge?)")
    s = scores(params, mask, conflict_stats(params, mask, group_grads), config)
    return prune_by_score(s, mask, fraction, scope=scope)
