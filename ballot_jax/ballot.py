"""Ballot's conflict-detection-based subnetwork selection, as pure functions on pytrees.

Our reconstruction of the paper's description (see docs/method.md for the reasoning). For every
prunable weight w_i and group g, with per-group gradients g_{g,i} = ∂L_g/∂w_i and group losses L_g:

    Δ_{g,i}   = −w_i · g_{g,i}                       first-order change of L_g if w_i is removed
    Δᵃ_i      = (1/G) Σ_g Δ_{g,i}                    ... of the group-balanced loss (accuracy)
    Δᶠ_i      = (2/G) Σ_g (L_g − L̄) · Δ_{g,i}       ... of the disparity D = Var_g(L_g) (fairness)
    a_i       = | (1/G) Σ_g sign(Δ_{g,i}) |          group agreement in [0, 1] (AND-mask style)
    conflict_i = [Δᵃ_i > 0 and Δᶠ_i < 0]             keeping w_i helps accuracy but widens the gap

Positive Δ means removing the weight hurts. The keep score blends the two removal effects, trusting
the accuracy effect where the groups agree and the fairness effect where they conflict:

    z_i = a_i · Δᵃ_i / σᵃ + λ · (1 − a_i) · Δᶠ_i / σᶠ     (σ: RMS over alive prunable weights)
    s_i = |w_i| · exp(β · tanh(z_i))

so a weight whose removal would widen the gap between groups is kept, one whose removal would narrow
it is pruned first, and the magnitude prior bounds how far conflicts can reorder weights (a factor
in [e^−β, e^β]). Ablations: ``use_magnitude=False`` sets |w_i| to 1, ``use_agreement=False`` sets
a_i to 1/2, ``use_direction=False`` drops the fairness effect (Δᶠ := 0).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ballot_jax.grads import GroupGrads
from ballot_jax.masks import Mask, is_unprunable, mask_leaves
from ballot_jax.pruning import Scope
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

    accuracy_effect: PyTree  # Δᵃ
    fairness_effect: PyTree  # Δᶠ
    agreement: PyTree  # a
    conflict: PyTree  # bool


def _map(fn, mask, *trees):
    return jax.tree.map(lambda m, *xs: None if m is None else fn(m, *xs), mask, *trees, is_leaf=is_unprunable)


def _prunable_only(tree: PyTree, mask: Mask) -> PyTree:
    """``tree`` restricted to the mask's prunable leaves (``None`` elsewhere), mask structure."""
    return _map(lambda m, x: x, mask, tree)


@jax.jit
def conflict_stats(params: PyTree, mask: Mask, group_grads: GroupGrads) -> ConflictStats:
    """Δᵃ, Δᶠ, agreement and conflict for every prunable weight. Jit-able.

    ``group_grads.grads`` has the params' structure with a leading [G] axis; ``group_grads.loss`` [G].
    """
    losses = group_grads.loss
    deviation = losses - jnp.mean(losses)
    num_groups = losses.shape[0]
    grads = _prunable_only(group_grads.grads, mask)
    weights = _prunable_only(params, mask)

    def stats(m, w, g):
        effect = -w[None] * g  # [G, ...]
        effect = jnp.where(m[None], effect, 0.0)
        acc = jnp.mean(effect, axis=0)
        fair = (2.0 / num_groups) * jnp.tensordot(deviation, effect, axes=1)
        agreement = jnp.abs(jnp.mean(jnp.sign(effect), axis=0))
        # Conflict needs Δᶠ clearly below 0: round-off of an exactly balanced sum must not count.
        tol = 1e-6 * jnp.max(jnp.abs(deviation)) * jnp.sum(jnp.abs(effect), axis=0)
        return acc, fair, agreement, (acc > 0) & (fair < -tol)

    per_leaf = _map(stats, mask, weights, grads)
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
    acc = _normalise(stats.accuracy_effect, mask)
    fair = _normalise(stats.fairness_effect, mask)
    weights = _prunable_only(params, mask)

    def score(m, w, a_eff, f_eff, agree):
        a = agree if config.use_agreement else jnp.full_like(agree, 0.5)
        f = f_eff if config.use_direction else jnp.zeros_like(f_eff)
        z = a * a_eff + config.fairness_weight * (1.0 - a) * f
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
    weights (exact count, never reviving). Usable inside any training loop."""
    s = scores(params, mask, conflict_stats(params, mask, group_grads), config)
    return prune_by_score(s, mask, fraction, scope=scope)
