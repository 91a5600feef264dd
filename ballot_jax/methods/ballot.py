"""Ballot as a strategy on the engine's levels loop.

Each level: (1) estimate per-group gradients and losses of the previous level's trained weights with
one sharded, vmapped pass per group-stratified batch, averaged over ``score_batches`` batches;
(2) score every prunable weight with ``ballot_jax.ballot.scores`` (conflict detection) and keep the
top ``keep_counts[level]``; (3) refined training: rewind the weights to θ_k and retrain with
LTH-style learning-rate rewinding (``lr="rewind"``, default) or a fresh warm-up + cosine schedule
per level (``lr="warmup_cosine"``), optionally on group-balanced batches, minimising cross-entropy
plus μ times a disparity D of the batch: by default the variance of its group losses (the disparity
the selection measures), or ``disparity="worst_cell"``, a soft worst-(label, group)-cell reweighting
(``ballot_jax.objectives.fairness_surrogate``; docs/method.md §5).
Same budget as Standard LTH: T − k steps a level.
"""

from __future__ import annotations

import dataclasses
import pathlib


from ballot_jax import ballot
from ballot_jax.engine.loop import LevelPlan, Task, TrainConfig, init_state, run_levels
from ballot_jax.engine.mesh import check_divisible, put_batch
from ballot_jax.engine.samplers import group_index, stratified_batch
from ballot_jax.grads import make_sharded_group_grads, mean_group_grads
from ballot_jax.methods.base import Record, finish_record, level_plan
from ballot_jax.objectives import fair_objective, resolve_surrogate


@dataclasses.dataclass(frozen=True)
class Ballot:
    fraction: float = 0.2  # of the remaining weights pruned per level, as Standard LTH
    score: ballot.BallotConfig = ballot.BallotConfig()
    score_batches: int = 8  # stratified batches averaged for the per-group gradients
    per_group_batch: int = 32  # B_g: examples of each group in one stratified batch
    score_split: str = "train"  # "train" | "val": the data the conflict statistics are measured on
    lr: str = "rewind"  # refined training: "rewind" (LTH's LR rewinding) | "warmup_cosine" per level
    warmup_fraction: float = 0.1  # of each level's steps, for "warmup_cosine"
    balanced_sampling: bool = False  # refined training on group-balanced batches
    disparity_weight: float = 0.1  # μ: refined training minimises CE + μ · D(batch)
    disparity: str = "loss_var"  # D: "loss_var" (variance of group losses) | "worst_cell" | "dp" | "eo"
    disparity_temperature: float = 0.5  # τ of "worst_cell"
    name: str = "ballot"

    def retrain_config(self, config: TrainConfig) -> TrainConfig:
        """The refined-training phase config for levels >= 1."""
        if self.lr == "rewind":
            return dataclasses.replace(config, balanced_sampling=self.balanced_sampling)
        if self.lr != "warmup_cosine":
            raise ValueError(f"Ballot.lr must be 'warmup_cosine' or 'rewind', got {self.lr!r}")
        steps = config.steps - config.rewind_step
        return dataclasses.replace(
            config,
            steps=steps,
            rewind_step=0,
            rewind_lr=False,
            schedule="warmup_cosine",
            warmup_steps=max(1, int(self.warmup_fraction * steps)),
            balanced_sampling=self.balanced_sampling,
        )

    def score_fn(self, task: Task, config: TrainConfig):
        """``score_fn(state, level) -> keep scores``: the conflict-detection plug-in of the loop."""
        check_divisible(self.per_group_batch, task.mesh, "Ballot.per_group_batch")
        split = getattr(task.data, self.score_split)
        members = group_index(split.group, task.data.info.num_groups)
        group_grads_fn = make_sharded_group_grads(task.model, task.mesh)

        def batches(level: int):
            for b in range(self.score_batches):
                idx = stratified_batch(members, self.per_group_batch, config.seed + 7919 * level, b)
                yield put_batch({"x": split.x[idx], "y": split.y[idx], "group": split.group[idx]}, task.mesh, axis=1)

        def score(state, level):
            gg = mean_group_grads(group_grads_fn, state.params, state.model_state, batches(level))
            stats = ballot.conflict_stats(state.params, state.mask, gg)
            return ballot.scores(state.params, state.mask, stats, self.score)

        return score

    def retrain_objective(self, num_groups: int, num_classes: int):
        """The refined-training objective CE + μ · D (``ballot_jax.objectives.fair_objective``)."""
        kind = resolve_surrogate(self.disparity, num_classes)
        if not self.disparity_temperature > 0:
            raise ValueError(f"Ballot.disparity_temperature must be > 0, got {self.disparity_temperature}")
        return fair_objective(num_groups, kind, self.disparity_weight, self.disparity_temperature)

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        info = task.data.info
        plan = LevelPlan(
            level_plan(init_state(task, config).mask, sparsity, self.fraction),
            retrain=self.retrain_config(config),
            retrain_objective=self.retrain_objective(info.num_groups, info.num_classes),
        )
        levels = run_levels(task, config, self.score_fn(task, config), plan, workdir, name=self.name, dense_dir=dense_dir)
        return finish_record(self.name, sparsity, levels[-1], levels)


__all__ = ["Ballot"]
