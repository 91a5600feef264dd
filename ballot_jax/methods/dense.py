"""The dense reference: level 0 of the pruning loop alone (no pruning)."""

from __future__ import annotations

import dataclasses
import pathlib

from ballot_jax.engine.loop import Task, TrainConfig

from ballot_jax.engine.levels import LevelPlan, run_levels
from ballot_jax.methods.base import Record, finish_record
from ballot_jax.methods.lth import magnitude_score_fn


@dataclasses.dataclass(frozen=True)
class Dense:
    name: str = "dense"

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        del sparsity
        levels = run_levels(task, config, magnitude_score_fn, LevelPlan([]), workdir, name=self.name, dense_dir=dense_dir)
        return finish_record(self.name, 0.0, levels[-1], levels)
