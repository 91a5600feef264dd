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

from ballot_jax.objectives import StatefulObjective

TEACHER_KEY = "teacher"  # the batch field holding the teacher's logits [B, C]


def distillation_loss(logits: jax.Array, teacher_logits: jax.Array, temperature: float) -> jax.Array:
    """T² · the mean over the batch of KL(softmax(teacher / T) ‖ softmax(logits / T)) (Hinton et al.,
    2015: the T² keeps its gradient's scale comparable to the cross-entropy's as T changes). Zero when
    the logits equal the teacher's up to a constant per example; no gradient flows to the teacher."""
    if not temperature > 0:
        raise ValueError(f"the distillation temperature must be > 0, got {temperature}")
    teacher = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / temperature
    log_p = jax.nn.log_softmax(teacher, axis=-1)
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    return temperature**2 * jnp.mean(kl)


@functools.lru_cache(maxsize=64)
def distilled(objective, weight: float, temperature: float):
    """``objective`` + ``weight`` · ``distillation_loss(logits, batch[TEACHER_KEY], temperature)``: a
    plain objective or a ``StatefulObjective`` (its carry untouched). ``weight`` 0 returns ``objective``
    itself (the batch then needs no teacher). Memoised, so the engine reuses its compiled step."""
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
        return weight * distillation_loss(logits, batch[TEACHER_KEY], temperature)

    if isinstance(objective, StatefulObjective):
        def apply(logits, batch, carry):
            loss, carry = objective.apply(logits, batch, carry)
            return loss + term(logits, batch), carry

        return StatefulObjective(objective.init, apply)

    def plain(logits, batch):
        return objective(logits, batch) + term(logits, batch)

    return plain


__all__ = ["TEACHER_KEY", "distillation_loss", "distilled"]
