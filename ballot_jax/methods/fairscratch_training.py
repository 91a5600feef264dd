"""FairScratch's training: its own optimizer (the engine's, with the authors' per-epoch cosine
schedule when asked), the score network's initial state and its trainer for each λ, and one score
network trained (or loaded once finished) to its final sparse model and that model's record.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Callable

import jax.numpy as jnp
import optax

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, make_optimizer
from ballot_jax.engine.mesh import replicate
from ballot_jax.engine.phases import final_record
from ballot_jax.engine.steps import Objective, TrainState, evaluate
from ballot_jax.masks import num_prunable
from ballot_jax.methods.edge_popup import never_prunable, sparse_model
from ballot_jax.optim import FixedMaskState
from ballot_jax.pruning import num_keep_for_sparsity


def epoch_cosine_schedule(learning_rate: float, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """The authors' ``cosine_lr``: lr · ½(1 + cos(π e / E)) held for all of epoch e = ⌊step / spe⌋.

    E = ⌈total_steps / steps_per_epoch⌉ (the budget in epochs, the last one possibly partial).
    """
    steps_per_epoch = max(1, int(steps_per_epoch))
    epochs = max(1, -(-int(total_steps) // steps_per_epoch))

    def schedule(count):
        epoch = count // steps_per_epoch
        return learning_rate * 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / epochs))

    return schedule


def epoch_cosine_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """``config``'s optimizer (as the engine builds it) with ``epoch_cosine_schedule`` over its steps.

    SGD: coupled L2 weight decay then momentum (PyTorch's ``SGD(weight_decay=...)``, dampening 0).
    """
    return make_optimizer(config, epoch_cosine_schedule(config.learning_rate, steps_per_epoch, config.steps))


class OwnOptimizerTrainer(Trainer):
    """An engine ``Trainer`` whose step uses ``make_tx(config)`` instead of the engine's optimizer."""

    def __init__(
        self, task: Task, objective: Objective, make_tx: Callable[[TrainConfig], optax.GradientTransformation]
    ):
        super().__init__(task, objective, make_tx=make_tx)


def score_trainers(
    scored_task: Task, cfg: TrainConfig, objective_for: Callable[[float], Objective], steps_per_epoch: int | None
) -> tuple[TrainState, Callable[[float], Trainer]]:
    """(the score network's initial state, ``make_trainer(λ)``): the engine's optimizer, or with
    ``steps_per_epoch`` the per-epoch cosine one (``epoch_cosine_optimizer``; same state layout)."""
    state = init_state(scored_task, cfg, prunable=never_prunable)
    if steps_per_epoch is None:

        def make_trainer(weight):
            return Trainer(scored_task, objective=objective_for(weight))

        return state, make_trainer

    def make_tx(c):
        return epoch_cosine_optimizer(c, steps_per_epoch)

    opt_state = FixedMaskState(make_tx(cfg).init(state.params), state.mask)
    state = replicate(state._replace(opt_state=opt_state), scored_task.mesh)

    def make_own_trainer(weight):
        return OwnOptimizerTrainer(scored_task, objective_for(weight), make_tx)

    return state, make_own_trainer


def train_scores(
    name: str, task: Task, config: TrainConfig, s: dict[str, Any], trainer: Trainer, workdir: pathlib.Path,
    sparsity: float, predict: Callable,
) -> tuple[dict[str, Any], TrainState]:
    """Train one score network under ``workdir`` (``s``: ``FairScratch.setup``'s plan); its final
    sparse model's record fields and the score network's final state."""
    cfg = s["train_config"]
    final_path = workdir / "final"
    t0 = time.perf_counter()
    # Finished once ``final`` exists (no record.json of its own: not ``engine.phases.finished_phase``).
    if checkpoints.item_exists(final_path):
        state = checkpoints.load_item(final_path, s["state"])
    else:
        state = trainer.train(
            s["state"], cfg, s["budget"], data_seed=config.seed, ckpt_dir=workdir / "ckpt", desc=name
        )
        checkpoints.save_item(final_path, state)
    train_time = time.perf_counter() - t0

    params, mask = sparse_model(state.params, s["counts"])
    checkpoints.save_item(workdir / "sparse", {"params": params, "mask": mask})
    info = task.data.info

    def report(split):
        return evaluate(
            predict, params, state.model_state, split, info.num_classes, info.num_groups, task.mesh,
            config.eval_batch_size,
        )

    final = final_record(s["levels"], mask, params, train_time, report, task.data)
    target = num_keep_for_sparsity(num_prunable(mask), sparsity)
    if final["kept"] != target:
        raise AssertionError(f"FairScratch kept {final['kept']} weights, target {target}")
    return final, state
