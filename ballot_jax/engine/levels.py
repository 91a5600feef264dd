"""The iterative pruning loop (open_lth-style levels), resumable at any point.

Level 0 trains the dense network for ``steps`` steps and saves the rewind point θ_k (the whole
train state at step ``rewind_step``: weights, optimizer state, schedule and data position). Each
level r >= 1 then: scores the previous level's final weights (a plug-in), keeps exactly
``plan.keep_counts[r-1]`` weights (never reviving one), rewinds (or, for fine-tuning, keeps the
trained weights), and retrains. Every finished artefact (rewind point, each level's mask, final
state and metrics) is written once and skipped when the same command runs again.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Sequence

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import OnStep, Task, Trainer, TrainConfig, init_state, reset_optimizer, set_mask
from ballot_jax.engine.phases import describe, final_record, finished_phase, saved_item, train_phase
from ballot_jax.engine.progress import log
from ballot_jax.distillation import TEACHER_KEY, TEACHER_WEIGHT_KEY, group_anchor_weights
from ballot_jax.engine.steps import Objective, TrainState, make_logits, predict_split
from ballot_jax.masks import Prunable, default_prunable
from ballot_jax.pruning import prune_to_count

PyTree = Any
# Level r retrains on the data stream seeded seed + LEVEL_SEED_STRIDE * r: levels see different batch
# orders, reproducibly, and never collide with the dense phase's stream (r = 0) for any seed < 1000.
LEVEL_SEED_STRIDE = 1000

ScoreFn = Callable[[TrainState, int], PyTree]
# observe(level, directory) -> on_step hook (or None) for the phase whose final state is scored to
# prune ``level``; ``directory`` is that phase's directory, for any artefact the hook writes.
Observer = Callable[[int, pathlib.Path], "OnStep | None"]


@dataclasses.dataclass(frozen=True)
class LevelPlan:
    """The pruning schedule of an iterative run.

    keep_counts: weights kept after each level (``ballot_jax.pruning_plan``); rewind: rewind to θ_k
    before retraining (False: fine-tune the trained weights with a fresh optimizer, as magnitude
    pruning does); retrain: the phase config of levels >= 1 (default: the dense config).
    """

    keep_counts: Sequence[int]
    rewind: bool = True
    retrain: TrainConfig | None = None
    retrain_objective: Objective | None = None  # the loss of levels >= 1 (default: the trainer's)
    observe: Observer | None = None  # hooks into the training that precedes each pruning step
    # per-example training fields of levels >= 1, ``retrain_extra(state, record)`` of the dense phase's final state and
    # record (e.g. ``teacher_logits``: the dense model's logits, for a distilled objective); their batches carry them
    # (``Trainer.extra``)
    retrain_extra: Callable[[TrainState, dict], dict] | None = None


def teacher_logits(task: Task, anchor_groups: bool = False) -> Callable[[TrainState, dict], dict]:
    """``fields(state, record) -> {TEACHER_KEY: logits}``: ``state``'s model's eval-mode logits of every
    training example, float32 [N, C] (a ``LevelPlan.retrain_extra`` for ``ballot_jax.distillation``);
    with ``anchor_groups`` also ``TEACHER_WEIGHT_KEY``: 1 for the examples of the groups whose validation
    accuracy in ``record`` (the teacher's) is at least the groups' mean, else 0 (``group_anchor_weights``)."""
    logits = make_logits(task.model)

    def fields(state: TrainState, record: dict) -> dict:
        out = {TEACHER_KEY: predict_split(logits, state.params, state.model_state, task.data.train.x, task.mesh)}
        if anchor_groups:
            out[TEACHER_WEIGHT_KEY] = group_anchor_weights(record["val"]["per_group_accuracy"], task.data.train.group)
        return out

    return fields


def run_levels(
    task: Task,
    config: TrainConfig,
    score_fn: ScoreFn,
    plan: LevelPlan,
    workdir: str | pathlib.Path,
    *,
    prunable: Prunable = default_prunable,
    trainer: Trainer | None = None,
    name: str = "run",
    dense_dir: str | pathlib.Path | None = None,
) -> list[dict[str, Any]]:
    """Dense training, then one level per entry of ``plan.keep_counts``; returns per-level records.

    ``score_fn(state, level)`` scores the prunable weights of the previous level's final ``state``
    (higher = keep). Records hold val/test metrics, sparsity and wall time; they are also written to
    ``workdir/level_NN/record.json``, whose presence marks the level finished. ``dense_dir`` (default
    ``workdir/level_00``) holds level 0: methods run with the same config and seed can share it.
    """
    workdir = pathlib.Path(workdir)
    trainer = trainer or Trainer(task)
    retrain = plan.retrain or config
    fresh = init_state(task, config, prunable)
    records = []

    # Level 0: dense training, saving θ_k on the way.
    d0 = pathlib.Path(dense_dir) if dense_dir is not None else level_dir(workdir, 0)
    rewind_path = d0 / "rewind"

    def save_rewind(step: int, state: TrainState) -> None:
        if step == config.rewind_step and not checkpoints.item_exists(rewind_path):
            checkpoints.save_item(rewind_path, state)

    def observer(level: int, directory: pathlib.Path) -> OnStep | None:
        return plan.observe(level, directory) if plan.observe is not None and level <= len(plan.keep_counts) else None

    watch = observer(1, d0)
    if watch is not None and dense_dir is not None:
        raise ValueError("a plan that observes training cannot share a dense level 0 (dense_dir) it did not watch")
    state, record = _run_phase(
        trainer, fresh, config, config.steps, d0, data_seed=config.seed, on_step=_both(save_rewind, watch),
        desc=f"{name} dense", level=0,
    )
    records.append(record)
    rewind_state = checkpoints.load_item(rewind_path, fresh)
    level_trainer = trainer
    unfinished = any(not (level_dir(workdir, r) / "record.json").exists() for r in range(1, len(plan.keep_counts) + 1))
    if plan.retrain_extra is not None and unfinished:  # finished levels load; they need no fields
        level_trainer = trainer.with_extra(plan.retrain_extra(state, record))

    for level, keep in enumerate(plan.keep_counts, start=1):
        d = level_dir(workdir, level)
        mask = saved_item(
            d / "mask", state.mask, lambda: prune_to_count(score_fn(state, level), state.mask, int(keep))
        )
        if plan.rewind and retrain.rewind_lr:
            start = set_mask(rewind_state, mask)
        elif plan.rewind:
            start = reset_optimizer(rewind_state, retrain, mask)
        else:
            start = reset_optimizer(state, retrain, mask)
        state, record = _run_phase(
            level_trainer, start, retrain, retrain.steps, d, data_seed=retrain.seed + LEVEL_SEED_STRIDE * level,
            desc=f"{name} level {level}", level=level, objective=plan.retrain_objective,
            on_step=observer(level + 1, d),
        )
        records.append(record)
    return records


def continue_phase(
    task: Task,
    start_dir: str | pathlib.Path,
    config: TrainConfig,
    directory: str | pathlib.Path,
    *,
    level: int,
    objective: Objective | None = None,
    trainer: Trainer | None = None,
    prunable: Prunable = default_prunable,
    name: str = "run",
) -> dict[str, Any]:
    """One more phase from the final state of the finished phase in ``start_dir`` (e.g. a run's last
    level), at the same mask: a fresh optimizer with ``config``'s schedule from its start, ``config.steps``
    steps of ``objective`` on the data stream ``config.seed + LEVEL_SEED_STRIDE * level`` (fine-tuning a
    finished ticket without pruning it further). Resumable like a level; returns the phase's record
    (also written to ``directory/record.json``, with ``level``)."""
    trainer = trainer or Trainer(task)
    finished = finished_phase(pathlib.Path(start_dir), init_state(task, config, prunable))
    if finished is None:
        raise ValueError(f"{start_dir} holds no finished phase to continue from (its 'final' state and record.json)")
    start = reset_optimizer(finished[0], config, finished[0].mask)
    _, record = _run_phase(
        trainer, start, config, config.steps, pathlib.Path(directory), data_seed=config.seed + LEVEL_SEED_STRIDE * level,
        desc=f"{name} level {level}", level=level, objective=objective,
    )
    return record


def _both(first: OnStep, second: OnStep | None) -> OnStep:
    if second is None:
        return first

    def both(step: int, state: TrainState) -> None:
        first(step, state)
        second(step, state)

    return both


def level_dir(workdir: pathlib.Path, level: int) -> pathlib.Path:
    """The directory of ``level`` under a run's ``workdir`` (level 0: the dense phase)."""
    return pathlib.Path(workdir) / f"level_{level:02d}"


def _run_phase(trainer, state, config, until_step, directory, *, data_seed, desc, level, on_step=None, objective=None):
    """Train one level (or load it if finished), evaluate, and write its record."""
    finished = finished_phase(directory, state)
    if finished is not None:
        return finished
    state, train_time = train_phase(
        trainer, state, config, until_step, directory, data_seed=data_seed, desc=desc, on_step=on_step,
        objective=objective,
    )
    record = final_record(
        level, state.mask, state.params, train_time, lambda split: trainer.evaluate(state, split), trainer.task.data
    )
    checkpoints.write_json(directory / "record.json", record)
    log(f"{desc}: {describe(record)}")
    return state, record
