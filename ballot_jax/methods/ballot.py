"""Ballot as a strategy on the engine's levels loop.

The default (one configuration for every dataset; docs/method.md §5.5-5.7): the mode, one-shot
pruning by the authors' vote (our saliency score) + fine-tuning of the trained weights, or LTH's
iterative |w| pruning + rewinding to θ_k, chosen per run as the more accurate on validation;
refined training against SafeCompress's group adversary (since session 14; the soft worst-cell
reweighting before), μ chosen per run on validation under the accuracy constraint ε. Each part is
switchable.

Selection (``selection``):

- ``"vote"`` (the authors' mechanism, ``ballot_jax.vote``; the loop's hooks: ``ballot_vote``): at
  ``vote_points`` evenly spaced points of the phase that precedes the pruning step (the dense
  training for level 1), one ballot of the ``keep_counts[r]`` best alive weights by ``vote_kind``;
  the weights with the most votes are kept (ties by |w|). Each ballot is written to
  ``<phase dir>/votes/`` as it is cast, so a killed run resumes with the same votes. The vote
  watches the dense phase, so it trains its own level 0 (the same weights as the shared one: same
  seed, deterministic) instead of reusing it.
- ``"magnitude"``: |w| of the trained weights, LTH's selection (with rewinding and μ = 0 this is
  Standard LTH number for number). ``rewind_selection`` is the selection of ``pruning="auto"``'s
  rewinding mode.
- ``"conflict"`` (ours): per-group gradients and losses of the trained weights from one sharded,
  vmapped pass per group-stratified batch, averaged over ``score_batches`` batches, scored by
  ``ballot_jax.ballot.scores`` (conflict detection); the top ``keep_counts[r]`` are kept.

Pruning: ``"one_shot"`` (one level, LTH's total retraining budget), ``"iterative"`` (f per level) or
``"auto"`` (both modes of ``AUTO_MODES`` retrain at the first μ; the more accurate on validation
runs the μ search; the other's training counts in ``search_steps``).
Refined training: fine-tune the trained weights (``rewind=False``) or rewind them to θ_k
(``rewind=True``) with LTH-style learning-rate rewinding (``lr="rewind"``) or a fresh warm-up +
cosine schedule (``lr="warmup_cosine"``), optionally on group-balanced batches, minimising
cross-entropy plus μ times a disparity D of the batch (``ballot_jax.objectives.fairness_surrogate``), or
cross-entropy minus μ times a carried adversary's cross-entropy (``disparity="adversary"``,
``ballot_jax.methods.adversary.adversarial_objective``).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from ballot_jax import ballot
from ballot_jax.distillation import distilled, group_anchor_weights
from ballot_jax.engine import checkpoints
from ballot_jax.engine.levels import LevelPlan, continue_phase, level_dir, run_levels, teacher_logits
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, dense_mask, init_state
from ballot_jax.engine.phases import finished_phase
from ballot_jax.engine.mesh import check_divisible, put_batch
from ballot_jax.engine.steps import group_loss, mean_cross_entropy
from ballot_jax.grads import mean_group_grads, sharded_group_grads
from ballot_jax.methods.ballot_vote import voting
from ballot_jax.methods.base import Record, finish_record, level_keep_counts, validation_problem
from ballot_jax.methods.lth import magnitude_score_fn
from ballot_jax.samplers import group_index, stratified_batch
from ballot_jax.methods.adversary import ADVERSARY_BALANCES, REACH_KEY, adversarial_objective
from ballot_jax.objectives import SOFT_WORST, SURROGATES, fair_objective, resolve_surrogate, running_fair_objective

SELECTIONS = ("conflict", "magnitude", "vote")
PRUNINGS = ("auto", "iterative", "one_shot")
MU_RULES = ("fairest", "strongest", "strongest_fairer", "strongest_prefix")
# pruning="auto": which mode's μ = 0 candidate runs the μ search: "accurate" (the higher validation
# accuracy) | "fairer_within_epsilon" (of those within ε of the more accurate, the lower validation CWV)
# | "resolved" (session 39, C21: LTH's mode, ``RESOLVED_FALLBACK_MODE``, unless another mode is more accurate by
# more than one standard error of the validation split)
MODE_RULES = ("accurate", "fairer_within_epsilon", "resolved")
# what the accuracy constraint of the μ search compares with: the dense model (the paper's θ*) or
# the first μ candidate's ticket (μ = 0: no disparity term; in the rewinding mode Standard LTH itself)
EPSILON_REFERENCES = ("dense", "ticket")
# how finely the ε constraint is applied: "split_se" (no finer than one standard error of the reference's
# validation accuracy, :func:`effective_epsilon`; C10, the default since session 17) | "none" (ε as given)
EPSILON_FLOORS = ("none", "split_se")
# pruning="auto": the candidate modes, (pruning, rewind, the Ballot field naming the selection),
# tried at the first μ; the more accurate on validation is kept (docs/method.md §5.6-5.7).
AUTO_MODES = {
    "one_shot_finetune": ("one_shot", False, "selection"),
    "iterative_rewind": ("iterative", True, "rewind_selection"),
}
# mode_rule="resolved": the mode kept unless another is resolvably more accurate (LTH's: its μ = 0 candidate is
# Standard LTH's ticket, the bar's baseline)
RESOLVED_FALLBACK_MODE = "iterative_rewind"
# D of the refined training: a batch surrogate (``objectives.fairness_surrogate``) or "adversary"
# (CE − μ · a group adversary's cross-entropy, the adversary carried across the phase's steps)
DISPARITIES = (*SURROGATES, "adversary")
# how a μ > 0 candidate of the μ search is trained: "retrain" (every level of the run retrained with the
# disparity term, from the same selection as μ = 0) | "polish" (session 28: the μ = 0 candidate's final
# ticket fine-tuned with the term for one more phase at its mask; ``Ballot.polish_config``)
REFINES = ("retrain", "polish")
DISTILL_TEACHERS = ("dense", "ticket")  # ``distill``'s teacher: the dense model (C17) | the μ = 0 ticket (C18)
DISTILL_GROUPS = ("all", "above_mean")  # the examples ``distill`` reaches: all | the groups at or above the mean
# the examples whose logits the adversary term's gradient reaches: all | those of the groups below the mean (C19)
ADVERSARY_REACHES = ("all", "below_mean")
SCORE_SEED_STRIDE = 7919  # conflict statistics before level r draw their batches with seed + 7919·r


@dataclasses.dataclass(frozen=True)
class Ballot:
    fraction: float = 0.2  # of the remaining weights pruned per level, as Standard LTH
    # "vote" (the authors' mechanism) | "conflict" (ours: one-point conflict score) | "magnitude" (|w|, LTH's)
    selection: str = "vote"
    # pruning="auto" only: the selection of its rewinding mode (|w|: a rewound vote ticket is less fair
    # than LTH's; docs/method.md §5.7); a fixed pruning mode uses ``selection``
    rewind_selection: str = "magnitude"
    # "auto": one shot + fine-tuning or iterative + rewinding, the more accurate on validation (per run)
    # | "one_shot" (the authors': one level) | "iterative" (f per level, as LTH)
    pruning: str = "auto"
    # False: fine-tune the trained weights (fresh optimizer) | True: from θ_k (LTH); "auto" sets it
    rewind: bool = False
    score: ballot.BallotConfig = ballot.BallotConfig()
    score_batches: int = 8  # stratified batches averaged for the per-group gradients
    per_group_batch: int = 32  # B_g: examples of each group in one stratified batch
    score_split: str = "train"  # "train" | "val": the data the conflict statistics are measured on
    vote_kind: str = "saliency"  # "saliency" (|w·g|, ours) | "authors" (signed ĝ + η ĝᶠ) | "conflict"
    vote_points: int = 10  # E: ballots cast over the phase that precedes each pruning step
    vote_batches: int = 4  # training batches (the run's batch size) summed for g and gᶠ per ballot
    vote_eta: float = 1.0  # η
    lr: str = "rewind"  # refined training: "rewind" (LTH's LR rewinding) | "warmup_cosine" per level
    warmup_fraction: float = 0.1  # of each level's steps, for "warmup_cosine"
    balanced_sampling: bool = False  # refined training on group-balanced batches
    disparity_weight: float = 0.1  # μ: refined training minimises CE + μ · D(batch) (unless searched)
    # D: "adversary" (since session 14: SafeCompress's min-max game, CE − μ · the cross-entropy of an
    # adversary predicting the group from the model's confidence and correctness) | "worst_cell" (the
    # soft worst (group, label) cell, the default before) | "worst_group" | "loss_var" | "dp" | "eo"
    disparity: str = "adversary"
    # how "adversary" averages its cross-entropy over a batch: "groups" (since session 16: each group
    # present weighs the same; ``methods.adversary.adversary_loss``) | "examples" (SafeCompress's authors)
    adversary_balance: str = "groups"
    # which examples the model's gradient of the adversary term reaches (session 32, ours; C19,
    # docs/results/scripts/session32_preregistration.md): "all" | "below_mean" (the μ > 0 candidates' term moves only
    # the examples of the groups whose validation accuracy of the μ = 0 ticket is below the groups' mean; the others'
    # logits are constants in it: ``adversarial_objective(one_sided=True)``; needs a μ search starting at 0)
    adversary_reach: str = "all"
    disparity_temperature: float = 0.5  # τ of "worst_cell" / "worst_group"
    # γ of "worst_cell" / "worst_group": q = softmax(estimate / τ) with a running estimate of each
    # cell's loss across the phase's batches (objectives.running_fair_objective); 1 = this batch's means
    disparity_decay: float = 1.0
    # other D's tried per run beside ``disparity`` (needs a μ search): the μ search runs for each, and
    # the D whose chosen candidate has the lowest validation CWV wins (ties: ``disparity``); one that
    # is the same objective on the training split (cells = groups) is not retrained
    disparity_alternatives: tuple = ()
    # μ chosen per run on validation among the candidates whose val accuracy is within ε of the
    # ``epsilon_reference`` accuracy, by ``mu_rule``; empty: μ = disparity_weight. Since session 21 (C12,
    # docs/results/scripts/session19_preregistration.md) (0, 0.3, 1, 3); (0, 0.1, 0.3, 1) before.
    disparity_weights: tuple = (0.0, 0.3, 1.0, 3.0)
    epsilon: float = 0.01  # ε, as a fraction (0.01 = 1 point)
    # which admissible μ (val accuracy within ε) wins: "strongest_prefix" (the default since session 30, C16,
    # docs/results/scripts/session29_preregistration.md: the grid walked upwards, the last admissible μ before the
    # first one that is not; reads no validation CWV) | "strongest" (the largest admissible μ, sessions 7-29)
    # | "fairest" (lowest val CWV, before session 7)
    # | "strongest_fairer" (the largest among μ = 0 and those with a lower val CWV than μ = 0's)
    mu_rule: str = "strongest_prefix"
    # pruning="auto": "accurate" (the mode with the higher val accuracy at μ = 0) | "fairer_within_epsilon"
    # | "resolved" (session 39's C21: the rewinding mode unless fine-tuning is more accurate by more than one
    # standard error of the validation split; :func:`choose_mode`)
    mode_rule: str = "accurate"
    # the reference accuracy of ε: "ticket" (the default since session 10: the first μ candidate's
    # validation accuracy, the same ticket without the disparity term; LTH itself in the rewinding
    # mode) | "dense" (the paper's Acc(θ) − Acc(θ*) ≤ ε, θ* the dense model; before session 10)
    epsilon_reference: str = "ticket"
    # "split_se" (since session 17: ε' = max(ε, the standard error of the reference's validation accuracy),
    # :func:`effective_epsilon`; C10 of docs/results/scripts/session18_preregistration.md) | "none" (ε as given)
    epsilon_floor: str = "split_se"
    # how a μ > 0 candidate is trained: "retrain" (every level with CE + μ · D, the default) | "polish"
    # (the μ = 0 candidate's final ticket + one fine-tuning phase with CE + μ · D, ``polish_config``)
    refine: str = "retrain"
    # κ (session 31, ours; C17, docs/results/scripts/session31_preregistration.md): every level of refined
    # training also distils the dense model, + κ · T² · KL(softmax(dense / T) ‖ softmax(logits / T)) with the dense
    # phase's eval-mode logits of each training example (``ballot_jax.distillation``); 0: off
    distill: float = 0.0
    distill_temperature: float = 2.0  # T of ``distill``
    # the teacher of ``distill``: "dense" (C17: the dense phase's final model; every candidate distils it) | "ticket"
    # (session 31's C18: the μ = 0 candidate's final ticket, distilled by the μ > 0 candidates only; needs a μ search
    # starting at 0)
    distill_teacher: str = "dense"
    # which examples ``distill`` reaches: "all" | "above_mean" (those of the groups whose validation accuracy, the
    # teacher's, is at least the groups' mean: the advantaged groups anchored, the others left to the term)
    distill_groups: str = "all"
    name: str = "ballot"

    def polish_config(self, config: TrainConfig) -> TrainConfig:
        """The phase that polishes the μ = 0 ticket (``refine="polish"``): one level's budget of LTH,
        T − k steps, with a fresh optimizer and the run's schedule from its start (fine-tuning, as
        Magnitude Pruning's)."""
        return dataclasses.replace(
            config, steps=config.steps - config.rewind_step, rewind_step=0, rewind_lr=False,
            balanced_sampling=self.balanced_sampling,
        )

    def retrain_config(self, config: TrainConfig, num_levels: int = 1) -> TrainConfig:
        """The refined-training phase config for levels >= 1.

        Every level gets LTH's T − k steps; one-shot pruning (``num_levels`` = the levels iterative
        pruning would take) gets them all in its single level, so the budget is LTH's.
        """
        if self.pruning == "auto":
            raise ValueError("Ballot.retrain_config needs a fixed mode: pruning='one_shot' or 'iterative'")
        steps = (config.steps - config.rewind_step) * (num_levels if self.pruning == "one_shot" else 1)
        if self.lr not in ("rewind", "warmup_cosine"):
            raise ValueError(f"Ballot.lr must be 'warmup_cosine' or 'rewind', got {self.lr!r}")
        if self.lr == "rewind" and self.rewind:  # continue θ_k's schedule and optimizer state
            return dataclasses.replace(
                config, steps=config.rewind_step + steps, balanced_sampling=self.balanced_sampling
            )
        fresh = dataclasses.replace(
            config, steps=steps, rewind_step=0, rewind_lr=False, balanced_sampling=self.balanced_sampling
        )
        if self.lr == "rewind":  # fine-tuning: the run's schedule from its start, fresh optimizer
            return fresh
        return dataclasses.replace(fresh, schedule="warmup_cosine", warmup_steps=max(1, int(self.warmup_fraction * steps)))

    def conflict_scores(self, task: Task, config: TrainConfig):
        """``scores(state, seed) -> keep scores``: conflict statistics of ``state`` from
        ``score_batches`` stratified batches drawn with ``seed``."""
        check_divisible(self.per_group_batch, task.mesh, "Ballot.per_group_batch")
        split = getattr(task.data, self.score_split)
        members = group_index(split.group, task.data.info.num_groups)
        group_grads_fn = sharded_group_grads(group_loss(task.model), task.mesh)

        def batches(seed: int):
            for b in range(self.score_batches):
                idx = stratified_batch(members, self.per_group_batch, seed, b)
                yield put_batch({"x": split.x[idx], "y": split.y[idx], "group": split.group[idx]}, task.mesh, axis=1)

        def scores(state, seed: int):
            gg = mean_group_grads(group_grads_fn, state.params, batches(seed), state.model_state)
            stats = ballot.conflict_stats(state.params, state.mask, gg)
            return ballot.scores(state.params, state.mask, stats, self.score)

        return scores

    def score_fn(self, task: Task, config: TrainConfig):
        """``score_fn(state, level) -> keep scores``: |w| (``selection="magnitude"``) or the
        conflict-detection plug-in of the loop."""
        if self.selection == "magnitude":
            return magnitude_score_fn
        scores = self.conflict_scores(task, config)
        return lambda state, level: scores(state, config.seed + SCORE_SEED_STRIDE * level)

    def retrain_objective(self, num_groups: int, num_classes: int, weight: float | None = None):
        """The refined-training objective CE + μ · D (``ballot_jax.objectives.fair_objective``; with
        ``disparity_decay`` < 1 the running-estimate form, ``running_fair_objective``; for
        ``disparity="adversary"`` CE − μ · the adversary's cross-entropy, ``adversarial_objective``)."""
        weight = self.disparity_weight if weight is None else weight
        if not 0 < self.disparity_decay <= 1:
            raise ValueError(f"Ballot.disparity_decay must be in (0, 1] (1: this batch's cell losses), got {self.disparity_decay}")
        if self.disparity_decay < 1 and self.disparity not in SOFT_WORST:
            raise ValueError(f"Ballot.disparity_decay < 1 needs disparity 'worst_cell' or 'worst_group', got {self.disparity!r}")
        if self.disparity == "adversary":  # adversarial_objective checks μ >= 0
            if self.adversary_balance not in ADVERSARY_BALANCES:
                raise ValueError(f"Ballot.adversary_balance must be one of {ADVERSARY_BALANCES}, got {self.adversary_balance!r}")
            if not weight:
                return mean_cross_entropy
            return adversarial_objective(num_groups, num_classes, weight, balance=self.adversary_balance,
                                         one_sided=self.adversary_reach == "below_mean")
        kind = resolve_surrogate(self.disparity, num_classes)
        if not self.disparity_temperature > 0:
            raise ValueError(f"Ballot.disparity_temperature must be > 0, got {self.disparity_temperature}")
        if self.disparity_decay < 1 and weight != 0:  # μ = 0: plain cross-entropy, nothing to estimate
            return running_fair_objective(
                num_groups, num_classes, kind, weight, self.disparity_temperature, self.disparity_decay
            )
        return fair_objective(num_groups, kind, weight, self.disparity_temperature)

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        for field in ("selection", "rewind_selection"):
            if getattr(self, field) not in SELECTIONS:
                raise ValueError(f"Ballot.{field} must be one of {SELECTIONS}, got {getattr(self, field)!r}")
        if self.pruning not in PRUNINGS:
            raise ValueError(f"Ballot.pruning must be one of {PRUNINGS}, got {self.pruning!r}")
        if self.mu_rule not in MU_RULES:
            raise ValueError(f"Ballot.mu_rule must be one of {MU_RULES}, got {self.mu_rule!r}")
        if self.mode_rule not in MODE_RULES:
            raise ValueError(f"Ballot.mode_rule must be one of {MODE_RULES}, got {self.mode_rule!r}")
        if self.epsilon_reference not in EPSILON_REFERENCES:
            raise ValueError(f"Ballot.epsilon_reference must be one of {EPSILON_REFERENCES}, got {self.epsilon_reference!r}")
        if self.epsilon_floor not in EPSILON_FLOORS:
            raise ValueError(f"Ballot.epsilon_floor must be one of {EPSILON_FLOORS}, got {self.epsilon_floor!r}")
        if self.refine not in REFINES:
            raise ValueError(f"Ballot.refine must be one of {REFINES}, got {self.refine!r}")
        if self.refine == "polish" and self.disparity_weights[:1] != (0.0,):
            raise ValueError("Ballot.refine='polish' fine-tunes the μ = 0 candidate: disparity_weights must start "
                             f"with 0 (e.g. (0.0, 0.3, 1.0, 3.0)), got {self.disparity_weights!r}")
        if self.distill < 0:
            raise ValueError(f"Ballot.distill must be >= 0 (0: no distillation), got {self.distill}")
        if not self.distill_temperature > 0:
            raise ValueError(f"Ballot.distill_temperature must be > 0, got {self.distill_temperature}")
        if self.distill and self.refine == "polish":
            raise ValueError("Ballot.distill needs refine='retrain' (a polish phase has no dense teacher): "
                             "set refine='retrain' or distill=0")
        if self.distill_teacher not in DISTILL_TEACHERS:
            raise ValueError(f"Ballot.distill_teacher must be one of {DISTILL_TEACHERS}, got {self.distill_teacher!r}")
        if self.distill_groups not in DISTILL_GROUPS:
            raise ValueError(f"Ballot.distill_groups must be one of {DISTILL_GROUPS}, got {self.distill_groups!r}")
        if self.distill and self.distill_teacher == "ticket" and self.disparity_weights[:1] != (0.0,):
            raise ValueError("Ballot.distill_teacher='ticket' distils the μ = 0 candidate: disparity_weights must start "
                             f"with 0 (e.g. (0.0, 0.3, 1.0, 3.0)), got {self.disparity_weights!r}")
        if self.adversary_reach not in ADVERSARY_REACHES:
            raise ValueError(f"Ballot.adversary_reach must be one of {ADVERSARY_REACHES}, got {self.adversary_reach!r}")
        if self.adversary_reach != "all":
            if self.disparity != "adversary" or self.disparity_alternatives:
                raise ValueError("Ballot.adversary_reach='below_mean' restricts the adversary term: it needs "
                                 f"disparity='adversary' and no disparity_alternatives, got {self.disparity!r} and "
                                 f"{self.disparity_alternatives!r}")
            if self.disparity_weights[:1] != (0.0,) or self.refine != "retrain" or self.distill:
                raise ValueError("Ballot.adversary_reach='below_mean' reads the groups from the μ = 0 candidate: it needs "
                                 "disparity_weights starting with 0 (e.g. (0.0, 0.3, 1.0, 3.0)), refine='retrain' and "
                                 f"distill=0, got {self.disparity_weights!r}, {self.refine!r}, {self.distill}")
        if self.disparity_alternatives and not self.disparity_weights:
            raise ValueError("Ballot.disparity_alternatives needs a μ search: set disparity_weights "
                             "(e.g. (0.0, 0.3, 1.0, 3.0)) or disparity_alternatives=()")
        if problem := validation_problem(self, task.data.val.num_examples):  # before any training
            raise ValueError(problem)
        workdir = pathlib.Path(workdir)
        if self.pruning == "auto":
            return self._choose_mode(task, config, sparsity, workdir, dense_dir)
        if not self._shares_dense(dense_dir):
            dense_dir = None  # the vote watches the dense phase: it cannot reuse one it did not watch
        iterative = level_keep_counts(dense_mask(task), sparsity, self.fraction)
        keep_counts = iterative[-1:] if self.pruning == "one_shot" else iterative
        retrain = self.retrain_config(config, len(iterative))
        if not self.disparity_weights:
            levels = self._run_levels(task, config, retrain, keep_counts, self.disparity_weight, workdir, dense_dir)
            return finish_record(self.name, sparsity, levels[-1], levels, selection=self.selection, **self._option_fields())
        return self._search(task, config, retrain, keep_counts, sparsity, workdir, dense_dir)

    def validation_reads(self) -> list[str]:
        """What this configuration chooses or weighs on the validation split, each named by its option (empty for one
        fixed mode at one μ with |w| or train-split conflict statistics, which needs no validation split)."""
        fields = ("selection", "rewind_selection") if self.pruning == "auto" else ("selection",)
        selections = {f: getattr(self, f) for f in fields}
        scored = [s for s in selections.values() if s == "conflict" or (s == "vote" and self.vote_kind == "conflict")]
        voted = [f for f, s in selections.items() if s == "vote" and self.vote_kind != "conflict"]
        reads = [
            (self.pruning == "auto", f"pruning='auto' (the mode chosen by mode_rule={self.mode_rule!r})"),
            (len(self.disparity_weights) > 1 or bool(self.disparity_alternatives),
             f"disparity_weights={self.disparity_weights!r} (μ chosen by mu_rule={self.mu_rule!r})"),
            *((True, f"{f}='vote' (the fairness gradient's weights 1/a_g are the groups' validation accuracies)") for f in voted),
            (bool(scored) and self.score_split == "val", "score_split='val' (the conflict statistics)"),
            (self.adversary_reach != "all", f"adversary_reach={self.adversary_reach!r} (the groups it reaches)"),
            (bool(self.distill) and self.distill_groups != "all", f"distill_groups={self.distill_groups!r} (the groups it anchors)"),
        ]
        return [what for used, what in reads if used]

    def _choose_mode(self, task, config, sparsity, workdir, dense_dir) -> Record:
        """``pruning="auto"``: each mode of ``AUTO_MODES`` retrains at the first μ (in
        ``workdir/<mode>``); the one ``mode_rule`` picks (:func:`choose_mode`) then runs the rest of
        the μ search there, resuming its first candidate. The other mode's training (its dense phase
        too when it could not share one) is added to ``search_steps``."""
        modes = {
            m: dataclasses.replace(self, pruning=p, rewind=r, selection=getattr(self, field))
            for m, (p, r, field) in AUTO_MODES.items()
        }
        first_mu = self.disparity_weights[:1]
        tried = {
            m: dataclasses.replace(variant, disparity_weights=first_mu).run(task, config, sparsity, workdir / m, dense_dir)
            for m, variant in modes.items()
        }
        names = list(tried)
        mode_search = {m: {"accuracy": r["levels"][-1]["val"]["accuracy"], "cwv": r["levels"][-1]["val"]["cwv"]}
                       for m, r in tried.items()}
        chosen = choose_mode(mode_search, self.epsilon, self.mode_rule, num_val=task.data.val.num_examples,
                             fallback=RESOLVED_FALLBACK_MODE)
        record = modes[chosen].run(task, config, sparsity, workdir / chosen, dense_dir)
        others = [m for m in names if m != chosen]
        extra_steps = sum(modes[m]._training_steps(task, config, sparsity, dense_dir) for m in others)
        # a shared dense phase is not the other mode's cost
        extra_time = sum(
            r["train_time_s"] for m in others for r in tried[m]["levels"][int(modes[m]._shares_dense(dense_dir)):]
        )
        return {**record, "mode": chosen, "mode_rule": self.mode_rule, "mode_search": mode_search,
                "run_dir": str(pathlib.PurePosixPath(chosen, record.get("run_dir", ""))),
                "search_steps": record.get("search_steps", 0) + extra_steps,
                "search_time_s": record.get("search_time_s", 0.0) + extra_time,
                "train_time_s": record["train_time_s"] + extra_time}

    def level_start_step(self, retrain: TrainConfig) -> int:
        """The step a level of refined training starts from: θ_k's step k when rewinding with LTH's
        LR rewinding (the schedule continues), else 0."""
        return retrain.rewind_step if self.rewind and retrain.rewind_lr else 0

    def _steps_per_level(self, retrain: TrainConfig) -> int:
        """Optimizer steps one level of refined training takes."""
        return retrain.steps - self.level_start_step(retrain)

    def _training_steps(self, task, config, sparsity, dense_dir) -> int:
        """Training steps of one run of this fixed mode at one μ: its levels, plus its dense phase
        unless it shares ``dense_dir``."""
        iterative = level_keep_counts(dense_mask(task), sparsity, self.fraction)
        levels = 1 if self.pruning == "one_shot" else len(iterative)
        per_level = self._steps_per_level(self.retrain_config(config, len(iterative)))
        return levels * per_level + (0 if self._shares_dense(dense_dir) else config.steps)

    def _shares_dense(self, dense_dir) -> bool:
        """Whether this method reuses a given shared dense phase (the vote trains its own)."""
        return dense_dir is not None and self.selection != "vote"

    def _run_levels(
        self, task, config, retrain, keep_counts, weight, workdir, dense_dir=None, watched_dense=None, extra=None
    ):
        """One candidate's levels. ``extra``: a ``LevelPlan.retrain_extra`` given to the μ > 0 candidates only, the
        μ = 0 ticket's fields (``distill_teacher="ticket"``, ``adversary_reach="below_mean"``)."""
        info = task.data.info
        trainer = Trainer(task)
        observe, score_fn = None, self.score_fn(task, config)
        if self.selection == "vote":
            observe, score_fn = voting(self, task, config, retrain, keep_counts, workdir, trainer, watched_dense)
        objective = self.retrain_objective(info.num_groups, info.num_classes, weight)
        if self.distill and self.distill_teacher == "dense":
            extra = teacher_logits(task, anchor_groups=self.distill_groups == "above_mean")
        if self.distill and extra is not None:
            objective = distilled(objective, self.distill, self.distill_temperature)
        plan = LevelPlan(
            keep_counts, rewind=self.rewind, retrain=retrain, retrain_objective=objective, observe=observe,
            retrain_extra=extra,
        )
        return run_levels(
            task, config, score_fn, plan, workdir, name=self.name, dense_dir=dense_dir or watched_dense, trainer=trainer
        )

    def _option_fields(self) -> dict:
        """The record's fields of the options of sessions 31-32 that are on (none when off: the records of before)."""
        fields = {}
        if self.distill:
            fields.update(distill=self.distill, distill_temperature=self.distill_temperature,
                          distill_teacher=self.distill_teacher, distill_groups=self.distill_groups)
        if self.adversary_reach != "all":
            fields["adversary_reach"] = self.adversary_reach
        return fields

    def _reach_fields(self, task, candidate_workdir, levels: int):
        """``adversary_reach="below_mean"``: a ``LevelPlan.retrain_extra`` giving ``REACH_KEY``, 1 for the training
        examples of the groups whose validation accuracy of the finished μ = 0 candidate in ``candidate_workdir`` (its
        last level's record) is below the groups' mean, else 0 (``group_anchor_weights``' complement)."""

        def extra(state, record):
            del state, record  # the dense phase's: the groups are the μ = 0 ticket's
            path = level_dir(candidate_workdir, levels) / "record.json"
            if not path.exists():
                raise ValueError(f"adversary_reach='below_mean': the μ = 0 candidate in {candidate_workdir} has not finished")
            accuracy = checkpoints.read_json(path)["val"]["per_group_accuracy"]
            return {REACH_KEY: 1.0 - group_anchor_weights(accuracy, task.data.train.group)}

        return extra

    def _ticket_teacher(self, task, retrain, candidate_workdir, levels: int):
        """``distill_teacher="ticket"``: a ``LevelPlan.retrain_extra`` giving the fields of the finished μ = 0
        candidate in ``candidate_workdir`` (its last level's final state and record), computed when first asked."""
        fields = teacher_logits(task, anchor_groups=self.distill_groups == "above_mean")
        cache = {}

        def extra(state, record):
            del state, record  # the dense phase's: this teacher is the μ = 0 ticket
            if not cache:
                found = finished_phase(level_dir(candidate_workdir, levels), init_state(task, retrain))
                if found is None:
                    raise ValueError(f"distill_teacher='ticket': the μ = 0 candidate in {candidate_workdir} has not finished")
                cache["fields"] = fields(*found)
            return cache["fields"]

        return extra

    def _disparities(self, task: Task) -> tuple[str, ...]:
        """``disparity`` and those of ``disparity_alternatives`` that are another objective on this
        training split (with one label per group the (group, label) cells are the groups, and
        ``worst_group`` is ``worst_cell``)."""
        units = [self.disparity]
        same = set(SOFT_WORST) if cells_are_groups(task.data.train) else set()
        for d in self.disparity_alternatives:
            if d not in units and not (d in same and self.disparity in same):
                units.append(d)
        return tuple(units)

    def _search(self, task, config, retrain, keep_counts, sparsity, workdir, dense_dir) -> Record:
        """μ chosen on validation under the accuracy constraint: every candidate retrains from the same
        selection (one dense phase, shared); of those whose val accuracy is within ε of the first
        candidate's (``epsilon_reference="ticket"``) or the dense model's (``"dense"``), ``mu_rule``
        picks one (:func:`choose_within_epsilon`), else the most accurate wins.
        With ``disparity_alternatives`` the search runs for each disparity D (the first μ, no D term
        when it is 0, is trained once; an alternative's candidates live in ``<workdir>/<D>/``) and
        :func:`choose_disparity` picks among the D's chosen candidates. The candidates' extra steps
        are the search's cost (``search_steps``)."""
        first = self.disparity_weights[0]
        units = self._disparities(task)

        def key(d, w):  # the first μ's candidate is shared by every D only when it has no D term
            return (units[0], w) if w == first and first == 0 else (d, w)

        def candidate_dir(d, w):  # relative to the method's workdir
            return pathlib.PurePosixPath(*(() if d == self.disparity else (d,)), f"mu_{w:g}")

        runs, own = {}, {}  # own: the phases a candidate trained itself (the rest of its levels are μ = 0's)
        polish, last = self.polish_config(config), len(keep_counts)
        teachers = {}  # distill_teacher="ticket": the μ = 0 candidate's fields, by its workdir
        for d in units:
            variant = self if d == self.disparity else dataclasses.replace(self, disparity=d)
            for weight in self.disparity_weights:
                if key(d, weight) in runs:
                    continue
                if self.refine == "polish" and weight != first:
                    start = runs[key(d, first)]
                    record = continue_phase(
                        task, level_dir(workdir / candidate_dir(*key(d, first)), last), polish,
                        level_dir(workdir / candidate_dir(d, weight), last + 1), level=last + 1,
                        objective=variant.retrain_objective(task.data.info.num_groups, task.data.info.num_classes, weight),
                        name=self.name,
                    )
                    runs[(d, weight)], own[(d, weight)] = [*start, record], [record]
                    continue
                shared = None if not runs else (dense_dir or level_dir(workdir / candidate_dir(units[0], first), 0))
                extra, ticket_dir = None, workdir / candidate_dir(*key(d, first))
                if self.distill and self.distill_teacher == "ticket" and weight != first:
                    if ticket_dir not in teachers:  # one μ = 0 ticket, loaded and run once for all the μ > 0 candidates
                        teachers[ticket_dir] = self._ticket_teacher(task, retrain, ticket_dir, last)
                    extra = teachers[ticket_dir]
                elif self.adversary_reach == "below_mean" and weight != first:
                    extra = self._reach_fields(task, ticket_dir, last)
                runs[(d, weight)] = variant._run_levels(
                    task, config, retrain, keep_counts, weight, workdir / candidate_dir(d, weight),
                    dense_dir=dense_dir if not runs else None, watched_dense=shared, extra=extra,
                )
                own[(d, weight)] = runs[(d, weight)][1:]
        val = {d: {w: runs[key(d, w)][-1]["val"] for w in self.disparity_weights} for d in units}
        dense_acc = runs[(units[0], first)][0]["val"]["accuracy"]
        reference = {d: dense_acc if self.epsilon_reference == "dense" else val[d][first]["accuracy"] for d in units}
        num_val = task.data.val.num_examples
        # without a validation split (allowed only when there is one candidate: ``run`` checks) nothing is chosen
        epsilon = {d: effective_epsilon(self.epsilon, reference[d], num_val, self.epsilon_floor) if num_val else self.epsilon
                   for d in units}
        mu = {d: choose_within_epsilon(val[d], reference[d], epsilon[d], self.mu_rule) for d in units}
        disparity = choose_disparity({d: val[d][mu[d]] for d in units})
        chosen = key(disparity, mu[disparity])
        levels = runs[chosen]
        per_candidate = polish.steps if self.refine == "polish" else len(keep_counts) * self._steps_per_level(retrain)
        search_steps = (len(runs) - 1) * per_candidate

        summary = {d: {f"{w:g}": {"accuracy": v["accuracy"], "cwv": v["cwv"]} for w, v in val[d].items()} for d in units}
        # every phase a candidate trained itself and the chosen candidate's path does not hold is the cost
        path = {id(r) for r in levels}
        search_time = sum(r["train_time_s"] for lv in own.values() for r in lv if id(r) not in path)
        extra = self._option_fields()
        if self.epsilon_floor != "none":  # with "none" the records are those of before session 17
            extra["epsilon_floor"], extra["epsilon_effective"] = self.epsilon_floor, epsilon[disparity]
        if self.disparity_alternatives:
            extra |= {"disparity": disparity, "disparity_search": {
                d: {"disparity_weight": mu[d], **summary[d][f"{mu[d]:g}"], "search": summary[d]} for d in units}}
        record = finish_record(
            self.name, sparsity, levels[-1], levels, selection=self.selection, disparity_weight=mu[disparity],
            mu_rule=self.mu_rule, epsilon_reference=self.epsilon_reference, search=summary[units[0]],
            search_steps=search_steps, search_time_s=search_time,
            run_dir=str(candidate_dir(*chosen)),  # the chosen candidate's levels, relative to the method's workdir
            **extra,
        )
        record["train_time_s"] += search_time  # the search is part of the method's budget
        return record


def cells_are_groups(split) -> bool:
    """Whether every group of ``split`` holds a single label, so that its (group, label) cells are its
    groups (e.g. groups = classes)."""
    pairs = np.unique(np.stack([np.asarray(split.group), np.asarray(split.y)]), axis=1)
    return np.unique(pairs[0]).size == pairs.shape[1]


def choose_disparity(val: dict) -> str:
    """The key of ``val`` ({D: {"accuracy", "cwv"}}: each disparity's chosen candidate) with the
    lowest validation CWV; ties: the first."""
    keys = list(val)
    return min(keys, key=lambda d: (val[d]["cwv"], keys.index(d)))


def choose_mode(val: dict, epsilon: float, rule: str = "accurate", num_val: int = 0, fallback: str | None = None) -> str:
    """The key of ``val`` ({mode: {"accuracy", "cwv"}}: each mode's μ = 0 candidate on validation)
    that runs the μ search: ``rule`` "accurate", the higher accuracy; "fairer_within_epsilon", of the
    modes whose accuracy is within ε of the highest, the lowest CWV; "resolved", ``fallback`` unless
    the most accurate mode beats it by more than one standard error of the split, sqrt(a (1 − a) /
    ``num_val``) at that mode's accuracy a (the choice no finer than the split can measure, as
    :func:`effective_epsilon`'s floor). Ties: the first ("resolved": ``fallback``)."""
    if rule not in MODE_RULES:
        raise ValueError(f"Ballot.mode_rule must be one of {MODE_RULES}, got {rule!r}")
    keys = list(val)
    best = max(keys, key=lambda m: (val[m]["accuracy"], -keys.index(m)))
    if rule == "accurate":
        return best
    if rule == "resolved":
        if fallback not in val:
            raise ValueError(f"mode_rule='resolved' needs fallback among the modes {keys}, got {fallback!r}")
        if num_val < 1:
            raise ValueError(f"mode_rule='resolved' needs a validation split, got {num_val} examples")
        margin = float(val[best]["accuracy"]) - float(val[fallback]["accuracy"])
        return best if margin > split_standard_error(val[best]["accuracy"], num_val) else fallback
    ok = [m for m in keys if val[m]["accuracy"] >= val[best]["accuracy"] - epsilon]
    return min(ok, key=lambda m: (val[m]["cwv"], keys.index(m)))


def effective_epsilon(epsilon: float, reference_accuracy: float, num_val: int, floor: str = "none") -> float:
    """The tolerance the μ choice applies: ``epsilon`` with ``floor`` "none"; with "split_se",
    max(ε, sqrt(a (1 − a) / n)), a = the reference's validation accuracy, n = the validation examples:
    the constraint Acc(θ) − Acc(θ*) ≤ ε checked no finer than one standard error of the split's
    accuracy estimate (a 500-image split at a = 0.4 resolves 2.2 points, not 1)."""
    if floor not in EPSILON_FLOORS:
        raise ValueError(f"Ballot.epsilon_floor must be one of {EPSILON_FLOORS}, got {floor!r}")
    if floor == "none":
        return epsilon
    if num_val < 1:
        raise ValueError(f"epsilon_floor='split_se' needs a validation split, got {num_val} examples")
    return max(epsilon, split_standard_error(reference_accuracy, num_val))


def split_standard_error(accuracy: float, num_val: int) -> float:
    """sqrt(a (1 − a) / n): the standard error of an accuracy a (clipped to [0, 1]) measured on n ≥ 1 examples, the
    resolution of the ε floor (:func:`effective_epsilon`) and of ``mode_rule="resolved"`` (:func:`choose_mode`)."""
    a = min(max(float(accuracy), 0.0), 1.0)
    return math.sqrt(a * (1.0 - a) / num_val)


def choose_within_epsilon(val: dict, reference_accuracy: float, epsilon: float, rule: str = "strongest_prefix"):
    """The key of ``val`` ({μ: {"accuracy", "cwv"}}, the first key the first candidate, μ = 0)
    chosen among the admissible ones, those with accuracy >= reference − ε: ``rule``
    "strongest_prefix" (the default), μ in increasing order up to the first that is not admissible,
    the last before it (an admissible μ above an inadmissible one is the split's noise when the cost
    grows with μ; if the smallest μ is not admissible: "strongest"); "strongest", the largest μ;
    "strongest_fairer", the largest of the first key and those with a lower CWV than the first key's
    (μ > 0 must buy fairness; if the first is not admissible and none is fairer: the largest
    admissible); "fairest", the lowest CWV (then the higher accuracy, then the first). If none
    qualifies, the most accurate (then the first)."""
    if rule not in MU_RULES:
        raise ValueError(f"Ballot.mu_rule must be one of {MU_RULES}, got {rule!r}")
    keys = list(val)
    ok = [k for k in keys if val[k]["accuracy"] >= reference_accuracy - epsilon]
    if not ok:
        return max(keys, key=lambda k: (val[k]["accuracy"], -keys.index(k)))
    if rule == "strongest":
        return max(ok, key=float)
    if rule == "strongest_prefix":
        ascending = sorted(keys, key=float)
        if ascending[0] not in ok:
            return max(ok, key=float)
        return next((below for below, k in zip(ascending, ascending[1:]) if k not in ok), ascending[-1])
    if rule == "strongest_fairer":
        first = keys[0]
        fairer = [k for k in ok if k == first or val[k]["cwv"] < val[first]["cwv"]]
        return max(fairer or ok, key=float)
    return min(ok, key=lambda k: (val[k]["cwv"], -val[k]["accuracy"], keys.index(k)))


@dataclasses.dataclass(frozen=True)
class BallotAuthors(Ballot):
    """Ballot as the authors' public code runs it: the literal vote (signed ĝ + η ĝᶠ, weights
    1/a_g) over the dense training, one-shot pruning to the target, the ticket rewound (to the run's
    θ_k; theirs: θ_0) and retrained with plain cross-entropy. Every layer votes (theirs: only the
    classifier), so the ticket has the baselines' sparsity."""

    selection: str = "vote"
    vote_kind: str = "authors"
    pruning: str = "one_shot"
    rewind: bool = True
    disparity_weight: float = 0.0
    disparity_weights: tuple = ()
    # no μ search (disparity_weights=()), so the rule is unused; it stays at the value every workdir saved before
    # session 30 changed Ballot's, so those workdirs resume without an option that changes nothing here
    mu_rule: str = "strongest"
    disparity_alternatives: tuple = ()
    name: str = "ballot_authors"


__all__ = ["Ballot", "BallotAuthors"]
