"""Magnitude Pruning: train dense, prune globally by |w| to the target sparsity in one shot, then
fine-tune the surviving weights (no rewinding) with a fresh optimizer. By default the fine-tuning
budget equals the retraining budget iterative pruning would spend at the same sparsity, so every
method trains for the same number of steps."""

from __future__ import annotations

import dataclasses
import pathlib

from ballot_jax.engine.loop import Task, TrainConfig, dense_mask

from ballot_jax.engine.levels import LevelPlan, run_levels
from ballot_jax.masks import num_prunable
from ballot_jax.methods.base import Record, finish_record, level_keep_counts
from ballot_jax.methods.lth import magnitude_score_fn
from ballot_jax.pruning import num_keep_for_sparsity


@dataclasses.dataclass(frozen=True)
class MagnitudePruning:
    fraction: float = 0.2  # only sets the default budget: that of iterative pruning at this rate
    finetune_steps: int | None = None  # None: same total budget as iterative pruning
    name: str = "magnitude"

    def __post_init__(self):
        if self.finetune_steps is not None and not self.finetune_steps >= 1:
            raise ValueError(f"finetune_steps must be None (the iterative budget) or >= 1, got {self.finetune_steps}")

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        mask = dense_mask(task)
        steps = self.finetune_steps or config.steps * max(1, len(level_keep_counts(mask, sparsity, self.fraction)))
        finetune = dataclasses.replace(config, steps=steps, rewind_step=0)
        plan = LevelPlan([num_keep_for_sparsity(num_prunable(mask), sparsity)], rewind=False, retrain=finetune)
        levels = run_levels(task, config, magnitude_score_fn, plan, workdir, name=self.name, dense_dir=dense_dir)
        return finish_record(self.name, sparsity, levels[-1], levels)
