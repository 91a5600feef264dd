"""Standard LTH: iterative magnitude pruning, ``fraction`` of the remaining weights per level,
rewinding to θ_k (k = ``config.rewind_step``; k = 0 is the original lottery ticket) and retraining."""

from __future__ import annotations

import dataclasses
import pathlib

from ballot_jax.engine.loop import Task, TrainConfig, dense_mask

from ballot_jax.engine.levels import LevelPlan, run_levels
from ballot_jax.methods.base import Record, finish_record, level_keep_counts
from ballot_jax.pruning import magnitude_scores


def magnitude_score_fn(state, level):
    """|w| of the previous level's final weights."""
    del level
    return magnitude_scores(state.params, state.mask)


@dataclasses.dataclass(frozen=True)
class LTH:
    fraction: float = 0.2
    name: str = "lth"

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        plan = LevelPlan(level_keep_counts(dense_mask(task), sparsity, self.fraction))
        levels = run_levels(task, config, magnitude_score_fn, plan, workdir, name=self.name, dense_dir=dense_dir)
        return finish_record(self.name, sparsity, levels[-1], levels)
