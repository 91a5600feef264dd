"""Min-max training against the fairness adversary (SafeCompress, the authors' preset).

``SafeState`` (the model's ``TrainState`` with the adversary's params and optimizer state, one
checkpointed pytree), the min-max step (the adversary's step, then the engine's model update on
CE − λ · the updated adversary's CE) and ``AdversarialTrainer``, the engine ``Trainer`` that runs it
(or, during pre-training, the engine's plain step with the adversary carried along).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ballot_jax import compiler
from ballot_jax.engine.loop import Task, Trainer, TrainConfig
from ballot_jax.engine.mesh import DATA_AXIS
from ballot_jax.engine.steps import (
    TrainState,
    _gather,
    _labels,
    _pcast_varying,
    apply_mean_grads,
    mean_cross_entropy,
    model_update,
    predict_split,
    reads_through_train,
    shard_step,
    step_rng,
)
from ballot_jax.methods.adversary import adversary_features, adversary_loss, apply_adversary
from ballot_jax.optim import fixed_mask

PyTree = Any


@reads_through_train
class SafeState(NamedTuple):
    """The authors' preset's resumable state: the model's ``TrainState`` and the adversary's params
    and optimizer state (one pytree, checkpointed together)."""

    train: TrainState
    adversary: PyTree
    adversary_opt: optax.OptState


def make_minmax_step(
    model, tx: optax.GradientTransformation, adversary_tx: optax.GradientTransformation, mesh, weight: float, kind: str
) -> Callable[[SafeState, dict], tuple[SafeState, dict[str, jax.Array]]]:
    """One min-max step, jitted and sharded like the engine's train step (``make_train_step``).

    1. Adversary: one ``adversary_tx`` step on its cross-entropy, given the current model's
       eval-mode outputs (no gradient to the model; the authors' ``mia_train`` runs ``model.eval()``).
    2. Model: one ``tx`` step on CE − ``weight`` · (the updated adversary's cross-entropy), train mode
       (their ``train_privately``; the engine's ``model_update``).
    Both objectives are evaluated on the global batch (outputs and labels gathered across devices,
    ``engine.steps._gather``), so the result does not depend on the device count.
    """

    def local_step(state: SafeState, batch):
        train = state.train
        rng = step_rng(train)
        labels = _gather(_labels(batch))
        seen, _ = model.apply(train.params, train.model_state, batch["x"], False, rng)
        seen = jax.lax.stop_gradient(_gather(seen))

        def attack(adversary):
            return adversary_loss(adversary, seen, labels, kind)

        (adv_before, adv_accuracy), adv_grads = jax.value_and_grad(attack, has_aux=True)(
            _pcast_varying(state.adversary)
        )
        adversary, adversary_opt = apply_mean_grads(adversary_tx, adv_grads, state.adversary_opt, state.adversary)

        # Not objectives.cross_entropy_plus: the step reports CE and the adversary's CE apart (and both at λ = 0).
        def objective(everything, labels):
            ce = mean_cross_entropy(everything, labels)
            adv, _ = adversary_loss(adversary, everything, labels, kind)
            return ce - weight * adv, (ce, adv)

        new_train, loss, accuracy, (ce, adv) = model_update(model, tx, train, batch, rng, objective)
        stats = {
            "loss": loss,
            "accuracy": accuracy,
            "cross_entropy": ce,
            "adversary_loss": adv,  # the updated adversary's CE on the model's train-mode outputs
            "adversarial_term": weight * adv,
            "adversary_loss_before": adv_before,  # its CE before its own update
            "adversary_accuracy": adv_accuracy,
        }
        stats = {k: jax.lax.pmean(v, DATA_AXIS) for k, v in stats.items()}
        return SafeState(new_train, adversary, adversary_opt), stats

    return shard_step(local_step, mesh)


class AdversarialTrainer(Trainer):
    """A ``Trainer`` over ``SafeState``: min-max steps (``minmax=True``) or the engine's plain
    cross-entropy step on the model with the adversary carried along unchanged (pre-training)."""

    def __init__(self, task: Task, *, minmax: bool, weight: float, kind: str, adversary_tx):
        super().__init__(task)
        self.minmax, self.weight, self.kind, self.adversary_tx = minmax, weight, kind, adversary_tx
        self._minmax_steps: dict[TrainConfig, Callable] = {}
        self._attack = None

    def step_fn(self, config: TrainConfig, objective=None) -> Callable:
        if objective is not None:
            raise ValueError("AdversarialTrainer has its own objective")
        if not self.minmax:  # steps on ``state.train`` alone (``stepped``): the engine's shared plain step
            return super().step_fn(config)
        if config not in self._minmax_steps:
            tx = fixed_mask(self.make_tx(config), None)  # the mask is read from the state
            self._minmax_steps[config] = make_minmax_step(
                self.task.model, tx, self.adversary_tx, self.task.mesh, self.weight, self.kind
            )
        return self._minmax_steps[config]

    def stepped(self, state: SafeState):
        """Pre-training steps the model alone: the adversary and its optimizer state (megabytes for
        the authors' adversary) stay out of the compiled step instead of being copied every step."""
        return state if self.minmax else state.train

    def with_stepped(self, state: SafeState, stepped) -> SafeState:
        return stepped if self.minmax else state._replace(train=stepped)

    def adversary_accuracy(self, state: SafeState, split, batch_size: int = 512) -> float:
        """The adversary's group accuracy on a split (the model in eval mode)."""
        if self._attack is None:
            model, kind = self.task.model, self.kind

            def attack(params, model_state, adversary, x, y):
                logits, _ = model.apply(params, model_state, x, False, jax.random.PRNGKey(0))
                features, label_code = adversary_features(logits, y, kind)
                return jnp.argmax(apply_adversary(adversary, features, label_code), -1).astype(jnp.int32)

            self._attack = compiler.jit(attack)

        def predict_group(params, model_state, xy):
            return self._attack(params, model_state, state.adversary, *xy)

        groups = predict_split(
            predict_group, state.params, state.model_state, (split.x, split.y), self.task.mesh, batch_size
        )
        return int(np.sum(groups == split.group)) / max(1, len(split.y))
