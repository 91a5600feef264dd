"""Knowledge distillation from a teacher's logits carried in the batch (jit-able, Flax-free).

The teacher's logits of every training example are computed once (e.g. the dense model's, before
pruning: ``engine.levels.teacher_logits`` as a ``LevelPlan.retrain_extra``) and travel with the batch
under ``TEACHER_KEY`` (``Trainer(extra=...)``), so a distilled objective is an ordinary engine
objective ``objective(logits, batch)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.objectives import StatefulObjective

TEACHER_KEY = "teacher"  # the batch field holding the teacher's logits [B, C]
# optional batch field: each example's weight in the distillation term [B] (absent: every example 1)
TEACHER_WEIGHT_KEY = "teacher_weight"


def distillation_loss(
    logits: jax.Array, teacher_logits: jax.Array, temperature: float, weights: jax.Array | None = None
) -> jax.Array:
    """T² · the mean over the batch of w_i · KL(softmax(teacher_i / T) ‖ softmax(logits_i / T)), w_i = 1
    without ``weights`` (Hinton et al., 2015: the T² keeps its gradient's scale comparable to the
    cross-entropy's as T changes). A weight of 0 leaves an example to the rest of the objective; the mean
    is over the whole batch, so a weighted example is pulled as hard as with all weights 1. Zero when the
    logits equal the teacher's up to a constant per example; no gradient flows to the teacher."""
    if not temperature > 0:
        raise ValueError(f"the distillation temperature must be > 0, got {temperature}")
    teacher = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / temperature
    log_p = jax.nn.log_softmax(teacher, axis=-1)
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    if weights is not None:
        kl = jax.lax.stop_gradient(weights.astype(jnp.float32)) * kl
    return temperature**2 * jnp.mean(kl)


def group_anchor_weights(per_group_accuracy, groups) -> np.ndarray:
    """Each example's distillation weight when only the advantaged groups are anchored: 1 for an example
    whose group's accuracy (``per_group_accuracy`` [G], e.g. the teacher's on validation; NaN for a group
    it did not measure) is at least the mean over the measured groups, else 0. ``groups`` [N] int."""
    accuracy = np.asarray(per_group_accuracy, np.float64)
    measured = np.isfinite(accuracy)
    if not measured.any():
        raise ValueError("group_anchor_weights needs at least one measured group accuracy")
    above = measured & (accuracy >= accuracy[measured].mean() - 1e-9)  # a group at the mean (to rounding) is anchored
    return above.astype(np.float32)[np.asarray(groups)]


@functools.lru_cache(maxsize=64)
def distilled(objective, weight: float, temperature: float):
    """``objective`` + ``weight`` · ``distillation_loss(logits, batch[TEACHER_KEY], temperature,
    batch[TEACHER_WEIGHT_KEY] if present)``: a plain objective or a ``StatefulObjective`` (its carry
    untouched). ``weight`` 0 returns ``objective`` itself (the batch then needs no teacher). Memoised,
    so the engine reuses its compiled step."""
    if weight < 0:
        raise ValueError(f"the distillation weight must be >= 0, got {weight}")
    if weight == 0:
        return objective
    if not temperature > 0:
        raise ValueError(f"the distillation temperature must be > 0, got {temperature}")

    def term(logits, batch):
        if TEACHER_KEY not in batch:
            raise ValueError(f"a distilled objective needs the teacher's logits in the batch (field {TEACHER_KEY!r}): "
                             "train with a Trainer given them (Trainer(..., extra={'teacher': logits}))")
        return weight * distillation_loss(logits, batch[TEACHER_KEY], temperature, batch.get(TEACHER_WEIGHT_KEY))

    if isinstance(objective, StatefulObjective):
        def apply(logits, batch, carry):
            loss, carry = objective.apply(logits, batch, carry)
            return loss + term(logits, batch), carry

        return StatefulObjective(objective.init, apply)

    def plain(logits, batch):
        return objective(logits, batch) + term(logits, batch)

    return plain


__all__ = ["TEACHER_KEY", "TEACHER_WEIGHT_KEY", "distillation_loss", "distilled", "group_anchor_weights"]
