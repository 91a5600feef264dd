"""FairScratch (Tang et al., CVPR 2023, "Fair Scratch Tickets: Finding Fair Sparse Networks without
Weight Training"): edge-popup over frozen random weights with a fairness term in the loss.

Two presets (``preset``), compared aspect by aspect with the authors' code in docs/method.md (7.3):

- ``"authors"`` (default; the method as its authors run it, github.com/HungerPWAY/Fair-Scratch-Tickets
  at 96dc6e1): top-k **per layer**, every layer (the classifier too) at the same density; only the
  scores are trained (weights, biases and norm scale/shift frozen at their init: zero biases and
  norm (1, 0) are the authors' bias-free convs and non-affine BatchNorm); loss = cross-entropy +
  λ · their relaxed signed demographic-parity gap on the logit (``surrogate="dp_logistic"``, or
  "dp_linear" / "dp_hinge"), weighted by the training set's group priors (binary targets; on
  multi-class data our "loss_var" instead, see the docs); λ = 0.12 (the middle of their grid
  {0, .06, .12, .18, .24}) or, with ``select_lambda=True``, the grid swept and λ picked on
  validation (``select_fairness_weight``); SGD lr 0.01, momentum 0.9, weight decay 1e-4 on the
  scores, cosine per epoch (``score_schedule="epoch_cosine"``).
- ``"ours"`` (our earlier adaptation, reproduced exactly): global top-k; scores *and* the
  unprunable params (biases, norm scale/shift) trained; loss = cross-entropy + 1.0 · a bounded
  max − min of the batch's per-group mean P(y=1) ("dp"; "loss_var" on multi-class data); SGD lr
  0.1, momentum 0.9, no weight decay, cosine per step.

Fields left ``None`` take the preset's value (``PRESETS``); any field set explicitly wins, so every
aspect is switchable for ablations. ``settings`` is the resolved view.

Common to both:
1. Budget. ``B = config.steps * (levels + 1)`` optimizer steps, the iterative-pruning budget at this
   sparsity (``levels = len(level_keep_counts(mask, sparsity, fraction))``), one run per λ with its own
   optimizer (``score_*``; the run's batch size, sampling, checkpointing and seed are kept).
2. Frozen weights. θ_0 is the engine's dense init (same seed as the other methods). Every prunable
   weight is replaced by a signed constant and never changes: ``weight_init="signed_kaiming"``
   (default; the authors' and edge-popup's "signed_constant"): sign(w_0)·√(2 / fan_in);
   "signed_std": sign(w_0)·std(layer's w_0) (ours; formerly misnamed "signed_constant", which now
   raises); "init": w_0 itself. ``scale_fan`` divides them by √density (their ``--scale-fan``).
3. Scores. One real score per prunable weight, U(−1/√fan_in, 1/√fan_in) (PyTorch's
   ``kaiming_uniform_(a=√5)``, the authors' init).
4. Forward pass. m = top-k of |s| with exactly k = ``num_keep_for_sparsity(N, sparsity)`` weights
   kept in total, ranked per layer (``scope="layer"``: k split over layers in proportion to their
   sizes, largest-remainder rounding, so every layer has the same density up to one weight) or
   globally (``scope="global"``). The network runs on w·m. Straight-through estimator through |s|:
   ∂L/∂s = ∂L/∂(w·m)·w·sign(s) for every weight, kept or not (forward value exactly w·m).
5. Final model = frozen weights · final top-k mask (+ the unprunable params), evaluated with the
   engine's ``evaluate`` on the original model; ``kept`` is exactly k.

Engine reuse: the score network is itself an engine ``Model`` whose params are
``{"scores", "free", "frozen"}``; the frozen weights (and, in the authors' preset, the free params)
are held by the masked optimizer with an all-False mask, so they get exactly zero updates (weight
decay included) and stay bitwise equal. The engine's sharded train step, ``Trainer.train``
(periodic checkpoints, resume) and samplers run unchanged; ``workdir/record.json`` marks the run
finished.

The pieces: the score network ``edge_popup.py``; the objective and the choice of λ
``fairscratch_objective.py``; the optimizer, trainers and one score network's training
``fairscratch_training.py``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
from typing import Any

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, TrainConfig, dense_mask
from ballot_jax.engine.phases import describe
from ballot_jax.engine.progress import log
from ballot_jax.engine.steps import make_predict
from ballot_jax.methods.base import Record, budget_steps, finish_record, level_keep_counts, validation_problem
from ballot_jax.methods.edge_popup import check_weight_init, freeze, keep_counts, scored_model, sparse_model
from ballot_jax.methods.fairscratch_objective import (
    SELECTION_METRICS, objective_maker, select_fairness_weight, selection_metric_for, surrogate_for,
)
from ballot_jax.methods.fairscratch_training import score_trainers, train_scores
from ballot_jax.objectives import DP_RELAXATIONS, SURROGATES

LAMBDA_GRID = (0.0, 0.06, 0.12, 0.18, 0.24)  # the authors' λ grid (generate_shell.py)

# Values of the fields left None, per preset. "authors": Tang et al.'s code (configs/celeba/
# ResNet18sparse_celeba_sc.yml, utils/conv_type.py, utils/bn_type.py, trainers/default.py);
# "ours": our earlier adaptation, kept as it was.
PRESETS: dict[str, dict[str, Any]] = {
    "authors": {
        "scope": "layer",
        "fairness_weight": 0.12,
        "train_unprunable": False,
        "score_learning_rate": 0.01,
        "score_weight_decay": 1e-4,
        "score_schedule": "epoch_cosine",
    },
    "ours": {
        "scope": "global",
        "fairness_weight": 1.0,
        "train_unprunable": True,
        "score_learning_rate": 0.1,
        "score_weight_decay": 0.0,
        "score_schedule": "cosine",
    },
}
SCORE_SCHEDULES = ("constant", "cosine", "warmup_cosine", "step", "epoch_cosine")


@dataclasses.dataclass(frozen=True)
class FairScratch:
    """Fair edge-popup from scratch (see the module docstring; fields left None follow ``preset``)."""

    fraction: float = 0.2  # only sets the budget: that of iterative pruning at this rate
    preset: str = "authors"  # "authors" (Tang et al.'s code) | "ours" (our earlier adaptation)
    scope: str | None = None  # top-k per layer ("layer"; authors) or over all prunable weights ("global"; ours)
    # frozen weights: sign(w_0)·√(2/fan_in) | "signed_std": sign(w_0)·std(layer's w_0) | "init": w_0
    weight_init: str = "signed_kaiming"
    scale_fan: bool = False  # divide the frozen weights by √density (density = kept / prunable)
    # "auto": authors "dp_logistic" (binary) else "loss_var"; ours "dp" (binary) else "loss_var".
    # Also "dp_linear" | "dp_hinge" (the authors' other relaxations) | "dp" | "eo" | "loss_var" | "worst_cell"
    surrogate: str = "auto"
    fairness_weight: float | None = None  # λ in CE + λ·surrogate (authors 0.12, ours 1.0)
    select_lambda: bool = False  # train every λ of lambda_grid, keep the one chosen on validation
    lambda_grid: tuple[float, ...] = LAMBDA_GRID
    lambda_tolerance: float = 0.01  # ε: admissible λ keep val accuracy within ε of the smallest λ's
    selection_metric: str = "auto"  # val unfairness to minimise: "auto" = DP difference (binary) else "mcd"
    train_unprunable: bool | None = None  # train biases / norm scale+shift (ours) or freeze them at init (authors)
    # FairScratch's own optimizer, used instead of the run's optimizer settings for what it trains;
    # the step budget, batch size and sampling are the run's.
    score_optimizer: str = "sgd"  # "sgd" (with score_momentum) | "adam" | "adamw"
    score_learning_rate: float | None = None  # authors 0.01, ours 0.1
    score_momentum: float = 0.9
    score_weight_decay: float | None = None  # on everything trained (authors 1e-4, ours 0)
    # "epoch_cosine" (authors: cosine held per epoch) | "cosine" (ours: per step) | "constant" |
    # "warmup_cosine" | "step"
    score_schedule: str | None = None
    name: str = "fairscratch"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {self.preset!r}")
        s = self.settings
        if s.scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {s.scope!r}")
        check_weight_init(s.weight_init)
        if s.score_optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"score_optimizer must be sgd, adam or adamw, got {s.score_optimizer!r}")
        if s.score_schedule not in SCORE_SCHEDULES:
            raise ValueError(f"score_schedule must be one of {SCORE_SCHEDULES}, got {s.score_schedule!r}")
        if not s.score_learning_rate > 0:
            raise ValueError("score_learning_rate must be > 0")
        if s.score_weight_decay < 0:
            raise ValueError("score_weight_decay must be >= 0")
        if s.surrogate not in SURROGATES + DP_RELAXATIONS:
            raise ValueError(f"surrogate must be one of {SURROGATES + DP_RELAXATIONS}, got {s.surrogate!r}")
        if s.fairness_weight < 0:
            raise ValueError("fairness_weight must be >= 0")
        if s.select_lambda:
            if self.fairness_weight is not None:
                raise ValueError("set either fairness_weight (a fixed λ) or select_lambda=True (λ from lambda_grid)")
            if not s.lambda_grid or any(not w >= 0 for w in s.lambda_grid):
                raise ValueError(f"lambda_grid must be non-empty with λ >= 0, got {s.lambda_grid}")
        if s.lambda_tolerance < 0:
            raise ValueError("lambda_tolerance must be >= 0")
        if s.selection_metric not in SELECTION_METRICS:
            raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {s.selection_metric!r}")

    @property
    def settings(self) -> types.SimpleNamespace:
        """Every option with the preset's value where the field is None (what a run uses)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in PRESETS[self.preset].items():
            if values[key] is None:
                values[key] = value
        values["lambda_grid"] = tuple(float(w) for w in values["lambda_grid"])
        return types.SimpleNamespace(**values)

    def validate(self, info) -> list[str]:
        """The problems of these options on a dataset described by ``info`` (``DatasetInfo``):
        binary-only surrogates or selection metrics on a multi-class dataset."""
        checks = [self.surrogate_kind] + ([self.selection_key] if self.settings.select_lambda else [])
        problems = []
        for check in checks:
            try:
                check(info.num_classes)
            except ValueError as err:
                problems.append(str(err))
        return problems

    def surrogate_kind(self, num_classes: int) -> str:
        """The fairness term used on a dataset with ``num_classes`` classes ("auto" resolved)."""
        return surrogate_for(self.surrogate, self.preset, num_classes)

    def selection_key(self, num_classes: int) -> str:
        """The validation metric ``select_lambda`` minimises ("auto" resolved)."""
        return selection_metric_for(self.settings.selection_metric, num_classes)

    def train_config(self, config: TrainConfig, budget: int) -> TrainConfig:
        """The run's ``config`` over ``budget`` steps with FairScratch's own optimizer settings.

        "epoch_cosine" is not an engine schedule: the config then says "cosine" (same optimizer
        state layout) and ``OwnOptimizerTrainer`` builds the per-epoch schedule. The run's warm-up
        (``config.warmup_steps``) is kept only for ``score_schedule="warmup_cosine"``: the scores'
        schedule is FairScratch's own, and the authors' has none.
        """
        s = self.settings
        schedule = "cosine" if s.score_schedule == "epoch_cosine" else s.score_schedule
        return dataclasses.replace(
            config, steps=budget, rewind_step=0, optimizer=s.score_optimizer,
            learning_rate=s.score_learning_rate, momentum=s.score_momentum,
            weight_decay=s.score_weight_decay, schedule=schedule,
            warmup_steps=config.warmup_steps if schedule == "warmup_cosine" else 0,
        )

    def setup(self, task: Task, config: TrainConfig, sparsity: float) -> dict[str, Any]:
        """Budget, the score network's task, a trainer per λ, and the initial (frozen-masked) state."""
        s = self.settings
        template = dense_mask(task)
        levels = len(level_keep_counts(template, sparsity, self.fraction))
        budget = budget_steps(config, levels)
        cfg = self.train_config(config, budget)
        counts = keep_counts(template, sparsity, s.scope)
        info = task.data.info
        kind = self.surrogate_kind(info.num_classes)
        scored_task = Task(
            scored_model(task.model, counts, s.weight_init, scale_fan=s.scale_fan), task.data, task.mesh
        )
        objective_for, objective_info = objective_maker(kind, task.data.train, info.num_groups)
        steps_per_epoch = max(1, len(task.data.train.y) // cfg.batch_size)  # the sampler's epoch
        epoch_cosine = s.score_schedule == "epoch_cosine"
        state, make_trainer = score_trainers(scored_task, cfg, objective_for, steps_per_epoch if epoch_cosine else None)
        weights = s.lambda_grid if s.select_lambda else (s.fairness_weight,)
        if s.select_lambda:
            self.selection_key(info.num_classes)  # fail before training
        return {
            "levels": levels,
            "budget": budget,
            "train_config": cfg,
            "counts": counts,
            "surrogate": kind,
            "fairness_weights": weights,
            "trainer": make_trainer(weights[0]),
            "make_trainer": make_trainer,
            "objective_info": objective_info,
            "steps_per_epoch": steps_per_epoch,
            "state": freeze(state, s.train_unprunable),
        }

    def validation_reads(self) -> list[str]:
        """What this configuration chooses on the validation split: λ, with ``select_lambda``."""
        return ["select_lambda=True (λ chosen from lambda_grid)"] if self.settings.select_lambda else []

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        del dense_dir  # trains from scratch: no dense phase to share
        if problem := validation_problem(self, task.data.val.num_examples):  # before any training
            raise ValueError(problem)
        workdir = pathlib.Path(workdir)
        record_path = workdir / "record.json"
        if record_path.exists():
            return checkpoints.read_json(record_path)
        st = self.settings
        s = self.setup(task, config, sparsity)
        cfg = s["train_config"]
        weights = s["fairness_weights"]
        predict = make_predict(task.model)  # one compiled forward pass for every λ's evaluation
        extra: dict[str, Any] = {}
        if not st.select_lambda:
            final, _ = train_scores(self.name, task, config, s, s["trainer"], workdir, sparsity, predict)
            weight = weights[0]
        else:
            metric = self.selection_key(task.data.info.num_classes)
            sweep = []
            for i, w in enumerate(weights):
                subdir = workdir / f"lambda_{i:02d}"
                done = subdir / "result.json"
                if done.exists():
                    result = checkpoints.read_json(done)
                else:
                    trainer = s["trainer"] if i == 0 else s["make_trainer"](w)
                    result, _ = train_scores(self.name, task, config, s, trainer, subdir, sparsity, predict)
                    result = {"fairness_weight": w, **result}
                    checkpoints.write_json(done, result)
                sweep.append(result)
            rows = [(r["fairness_weight"], r["val"]["accuracy"], r["val"][metric]) for r in sweep]
            chosen = select_fairness_weight(rows, st.lambda_tolerance)
            weight = weights[chosen]
            final = {k: v for k, v in sweep[chosen].items() if k != "fairness_weight"}
            final["train_time_s"] = sum(r["train_time_s"] for r in sweep)  # the whole sweep's cost
            like = checkpoints.load_item(workdir / f"lambda_{chosen:02d}" / "final", s["state"])
            params, mask = sparse_model(like.params, s["counts"])
            checkpoints.save_item(workdir / "sparse", {"params": params, "mask": mask})
            extra = {
                "selection_metric": metric,
                "lambda_tolerance": st.lambda_tolerance,
                "lambda_sweep": [
                    {"fairness_weight": r["fairness_weight"], "train_time_s": r["train_time_s"],
                     "val": {k: r["val"][k] for k in ("accuracy", "cwv", "mcd", metric)},
                     "test": {k: r["test"][k] for k in ("accuracy", "cwv", "mcd", metric)}}
                    for r in sweep
                ],
            }
        schedule = st.score_schedule
        record = finish_record(
            self.name, sparsity, final, budget_steps=s["budget"], search_steps=s["budget"] * len(weights),
            preset=self.preset, scope=st.scope, surrogate=s["surrogate"], fairness_weight=weight,
            select_lambda=st.select_lambda, weight_init=st.weight_init, scale_fan=st.scale_fan,
            train_unprunable=st.train_unprunable,
            optimizer={
                "optimizer": cfg.optimizer, "learning_rate": cfg.learning_rate, "momentum": cfg.momentum,
                "weight_decay": cfg.weight_decay, "schedule": schedule,
                **({"steps_per_epoch": s["steps_per_epoch"]} if schedule == "epoch_cosine" else {}),
            },
            **s["objective_info"], **extra,
        )
        checkpoints.write_json(record_path, record)
        log(f"{self.name} ({self.preset}, λ = {weight:g}): {describe(final)}")
        return record
