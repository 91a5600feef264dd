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
   sparsity (``levels = len(level_plan(mask, sparsity, fraction))``), one run per λ with its own
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
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
import types
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import replicate
from ballot_jax.engine.model import Model
from ballot_jax.engine.progress import log
from ballot_jax.engine.steps import Objective, TrainState, evaluate, make_predict, make_train_step
from ballot_jax.masks import (
    Mask,
    Prunable,
    default_prunable,
    is_unprunable,
    make_mask,
    map_prunable_with_keys,
    mask_leaves,
    sparsity_summary,
)
from ballot_jax.methods.base import Record, budget_steps, finish_record, level_plan
from ballot_jax.objectives import (
    DP_RELAXATIONS,
    SURROGATES,
    dp_relaxation_setup,
    fair_objective,
    relaxed_dp_objective,
    resolve_surrogate,
)
from ballot_jax.optim import MaskedState, masked, with_mask
from ballot_jax.pruning import distribute_keep_counts, keep_top_k_global, keep_top_k_per_leaf, num_keep_for_sparsity

PyTree = Any
# ------------------------------------------------------------------------------------------------
# The score network


WEIGHT_INITS = ("signed_kaiming", "signed_std", "init")


def check_weight_init(weight_init: str) -> None:
    """Raise for an unknown ``weight_init``, with a pointer for the renamed "signed_constant"."""
    if weight_init == "signed_constant":
        raise ValueError(
            "weight_init 'signed_constant' was renamed 'signed_std' (sign(w_0)·std of the layer's w_0); "
            "the authors' (edge-popup's) signed constant sign(w_0)·√(2/fan_in) is 'signed_kaiming'"
        )
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")


def fan_in(shape: Sequence[int]) -> int:
    """Product of all kernel dimensions but the last (Dense: inputs; conv HWIO: H·W·I)."""
    return max(1, int(np.prod(shape[:-1])))


def signed_std(params: PyTree, template: Mask) -> PyTree:
    """sign(w)·std(w) per prunable leaf (sign(0) := +1), ``None`` at unprunable leaves."""

    def leaf(m, w):
        if m is None:
            return None
        c = jnp.std(w)
        return jnp.where(w < 0, -c, c).astype(w.dtype)

    return jax.tree.map(leaf, template, params, is_leaf=is_unprunable)


def signed_kaiming(params: PyTree, template: Mask, gain: float = float(np.sqrt(2.0))) -> PyTree:
    """sign(w)·gain/√fan_in per prunable leaf (sign(0) := +1), ``None`` at unprunable leaves."""

    def leaf(m, w):
        if m is None:
            return None
        c = gain / np.sqrt(fan_in(jnp.shape(w)))
        return jnp.where(w < 0, -c, c).astype(w.dtype)

    return jax.tree.map(leaf, template, params, is_leaf=is_unprunable)


def frozen_weights(params: PyTree, template: Mask, weight_init: str, scale: float = 1.0) -> PyTree:
    """The frozen prunable weights of ``weight_init`` (see ``WEIGHT_INITS``) times ``scale``."""
    if weight_init == "signed_kaiming":
        frozen = signed_kaiming(params, template)
    elif weight_init == "signed_std":
        frozen = signed_std(params, template)
    elif weight_init == "init":
        frozen = jax.tree.map(lambda m, p: None if m is None else p, template, params, is_leaf=is_unprunable)
    else:
        check_weight_init(weight_init)
        raise AssertionError(weight_init)  # unreachable: check_weight_init raised
    if scale == 1.0:
        return frozen
    return jax.tree.map(lambda w: (w * scale).astype(w.dtype), frozen)


def init_scores(key: jax.Array, template: Mask) -> PyTree:
    """U(−1/√fan_in, 1/√fan_in) per prunable leaf (fan_in: all kernel dims but the last)."""

    def draw(k, m):
        bound = 1.0 / np.sqrt(fan_in(jnp.shape(m)))
        return jax.random.uniform(k, jnp.shape(m), jnp.float32, -bound, bound)

    return map_prunable_with_keys(draw, key, template)


def keep_counts(template: Mask, sparsity: float, scope: str) -> list[int] | int:
    """Exactly ``num_keep_for_sparsity(N, sparsity)`` in total: one int (global) or per leaf (layer)."""
    sizes = [int(np.size(m)) for m in mask_leaves(template)]
    total = num_keep_for_sparsity(sum(sizes), sparsity)
    if scope == "global":
        return total
    if scope == "layer":
        return distribute_keep_counts(sizes, [1.0] * len(sizes), total)
    raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")


def top_k_mask(scores: PyTree, counts: Sequence[int] | int) -> Mask:
    """Bool mask of the top |score| entries: ``counts`` total (int) or per leaf (list). Jit-able."""
    magnitude = jax.tree.map(lambda s: jnp.abs(jax.lax.stop_gradient(s)), scores)
    full = jax.tree.map(lambda s: jnp.ones(jnp.shape(s), bool), scores)
    if isinstance(counts, (int, np.integer)):
        return keep_top_k_global(magnitude, full, jnp.int32(counts))
    return keep_top_k_per_leaf(magnitude, full, jnp.asarray(counts, jnp.int32))


def materialise(trainable: PyTree, mask: Mask, straight_through: bool = False) -> PyTree:
    """The plain model's params: frozen·mask at prunable leaves, the free params elsewhere.

    With ``straight_through`` the value is the same but ∂/∂s = ∂/∂(w·m)·w·sign(s) (edge-popup's STE
    through the |s| that ``top_k_mask`` ranks: every step moves |s| in the direction that lowers the
    loss, whatever the sign of s).
    """

    def leaf(m, w, s, f):
        if m is None:
            return f
        w = jax.lax.stop_gradient(w)
        if straight_through:
            a = jnp.abs(s)
            m_ste = jax.lax.stop_gradient(m.astype(w.dtype)) + (a - jax.lax.stop_gradient(a)).astype(w.dtype)
            return w * m_ste
        return jnp.where(m, w, jnp.zeros_like(w))

    flat = lambda t: jax.tree.leaves(t, is_leaf=is_unprunable)  # noqa: E731 (all share one structure)
    m_leaves, treedef = jax.tree.flatten(mask, is_leaf=is_unprunable)
    out = [
        leaf(m, w, s, f)
        for m, w, s, f in zip(m_leaves, flat(trainable["frozen"]), flat(trainable["scores"]), flat(trainable["free"]))
    ]
    return jax.tree.unflatten(treedef, out)


def scored_model(
    model: Model,
    counts: Sequence[int] | int,
    weight_init: str = "signed_kaiming",
    prunable: Prunable = default_prunable,
    scale_fan: bool = False,
) -> Model:
    """The edge-popup network of ``model`` as an engine ``Model`` over ``{"scores", "free", "frozen"}``.

    ``init(rng, x)`` runs ``model.init(rng, x)`` (θ_0) and derives the frozen weights
    (``frozen_weights``; with ``scale_fan`` divided by √(k / N), the kept fraction) and scores;
    ``apply`` materialises frozen·top-k(|scores|) with the straight-through estimator and runs
    ``model.apply`` on it.
    """
    check_weight_init(weight_init)

    def init(rng, x):
        params, model_state = model.init(rng, x)
        template = make_mask(params, prunable)
        scale = 1.0
        if scale_fan:
            total = sum(int(np.size(m)) for m in mask_leaves(template))
            kept = int(np.sum(counts)) if not isinstance(counts, (int, np.integer)) else int(counts)
            scale = float(1.0 / np.sqrt(max(kept, 1) / max(total, 1)))
        frozen = frozen_weights(params, template, weight_init, scale)
        free = jax.tree.map(lambda m, p: p if m is None else None, template, params, is_leaf=is_unprunable)
        scores = init_scores(jax.random.fold_in(rng, 3), template)
        return {"scores": scores, "free": free, "frozen": frozen}, model_state

    def apply(trainable, model_state, x, train, rng):
        mask = top_k_mask(trainable["scores"], counts)
        return model.apply(materialise(trainable, mask, straight_through=True), model_state, x, train, rng)

    return Model(init, apply)


def freeze(state: TrainState, train_unprunable: bool = True) -> TrainState:
    """``state`` whose masked optimizer gives the frozen weights exactly zero updates (mask False).

    With ``train_unprunable=False`` the free params (biases, norm scale/shift) are frozen too, so
    only the scores train (the authors' setting).
    """

    def off(x):
        return jnp.zeros(jnp.shape(x), bool)

    mask = {
        "scores": jax.tree.map(lambda s: None, state.params["scores"]),
        "free": jax.tree.map((lambda f: None) if train_unprunable else off, state.params["free"]),
        "frozen": jax.tree.map(off, state.params["frozen"]),
    }
    return state._replace(opt_state=with_mask(state.opt_state, mask))


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
    schedule = epoch_cosine_schedule(config.learning_rate, steps_per_epoch, config.steps)
    if config.optimizer == "sgd":
        return optax.chain(optax.add_decayed_weights(config.weight_decay), optax.sgd(schedule, config.momentum))
    if config.optimizer == "adam":
        return optax.adam(schedule)
    return optax.adamw(schedule, weight_decay=config.weight_decay)


class OwnOptimizerTrainer(Trainer):
    """An engine ``Trainer`` whose step uses ``make_tx(config)`` instead of the engine's optimizer."""

    def __init__(
        self, task: Task, objective: Objective, make_tx: Callable[[TrainConfig], optax.GradientTransformation]
    ):
        super().__init__(task, objective)
        self._make_tx = make_tx
        self._own_steps: dict[tuple[TrainConfig, Objective], Callable] = {}

    def step_fn(self, config: TrainConfig, objective: Objective | None = None) -> Callable:
        objective = objective or self.objective
        key = (config, objective)
        if key not in self._own_steps:
            tx = masked(self._make_tx(config), None)  # the mask is read from the state
            self._own_steps[key] = make_train_step(self.task.model, tx, self.task.mesh, objective)
        return self._own_steps[key]


def select_fairness_weight(rows: Sequence[tuple[float, float, float]], tolerance: float = 0.01) -> int:
    """Index of the chosen λ among ``rows`` of (λ, val accuracy, val unfairness).

    The reference is the row with the smallest λ (λ = 0 in the authors' grid); admissible rows have
    val accuracy ≥ reference accuracy − ``tolerance``; the choice is the admissible row with the
    lowest unfairness (NaN counts as +inf), ties to the smaller λ, then the earlier row. The
    reference itself is always admissible.
    """
    rows = [(float(w), float(a), float(u)) for w, a, u in rows]
    if not rows:
        raise ValueError("no λ to select from")
    ref = min(range(len(rows)), key=lambda i: (rows[i][0], i))
    floor = rows[ref][1] - tolerance - 1e-12
    admissible = [i for i, (_, acc, _) in enumerate(rows) if acc >= floor]

    def unfairness(i):
        u = rows[i][2]
        return math.inf if math.isnan(u) else u

    return min(admissible, key=lambda i: (unfairness(i), rows[i][0], i))


def _never(path, leaf) -> bool:
    del path, leaf
    return False


# ------------------------------------------------------------------------------------------------


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
SELECTION_METRICS = (
    "auto", "mcd", "cwv", "demographic_parity_difference", "equal_opportunity_difference",
    "equalized_odds_difference",
)
BINARY_ONLY_METRICS = SELECTION_METRICS[3:]


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
        kind = self.surrogate
        if kind == "auto" and self.preset == "authors":
            return "dp_logistic" if num_classes == 2 else "loss_var"
        if kind in DP_RELAXATIONS:
            if num_classes != 2:
                raise ValueError(f"surrogate {kind!r} needs binary targets, the dataset has {num_classes} classes")
            return kind
        return resolve_surrogate(kind, num_classes)

    def selection_key(self, num_classes: int) -> str:
        """The validation metric ``select_lambda`` minimises ("auto" resolved)."""
        metric = self.settings.selection_metric
        if metric == "auto":
            return "demographic_parity_difference" if num_classes == 2 else "mcd"
        if metric in BINARY_ONLY_METRICS and num_classes != 2:
            raise ValueError(f"selection_metric {metric!r} needs binary targets, the dataset has {num_classes} classes")
        return metric

    def train_config(self, config: TrainConfig, budget: int) -> TrainConfig:
        """The run's ``config`` over ``budget`` steps with FairScratch's own optimizer settings.

        "epoch_cosine" is not an engine schedule: the config then says "cosine" (same optimizer
        state layout) and ``OwnOptimizerTrainer`` builds the per-epoch schedule.
        """
        s = self.settings
        schedule = "cosine" if s.score_schedule == "epoch_cosine" else s.score_schedule
        return dataclasses.replace(
            config, steps=budget, rewind_step=0, optimizer=s.score_optimizer,
            learning_rate=s.score_learning_rate, momentum=s.score_momentum,
            weight_decay=s.score_weight_decay, schedule=schedule,
        )

    def setup(self, task: Task, config: TrainConfig, sparsity: float) -> dict[str, Any]:
        """Budget, the score network's task, a trainer per λ, and the initial (frozen-masked) state."""
        s = self.settings
        template = init_state(task, config).mask
        levels = len(level_plan(template, sparsity, self.fraction))
        budget = budget_steps(config, levels)
        cfg = self.train_config(config, budget)
        counts = keep_counts(template, sparsity, s.scope)
        info = task.data.info
        kind = self.surrogate_kind(info.num_classes)
        scored_task = Task(
            scored_model(task.model, counts, s.weight_init, scale_fan=s.scale_fan), task.data, task.mesh
        )
        objective_info: dict[str, Any] = {}
        if kind in DP_RELAXATIONS:
            priors, direction = dp_relaxation_setup(task.data.train.y, task.data.train.group, info.num_groups)
            objective_info = {
                "dp_group_priors": np.asarray(priors).tolist(), "dp_direction": np.asarray(direction).tolist()
            }

            def objective_for(weight):
                return relaxed_dp_objective(priors, direction, weight, kind)
        else:

            def objective_for(weight):
                return fair_objective(info.num_groups, kind, weight)

        state = init_state(scored_task, cfg, prunable=_never)
        steps_per_epoch = max(1, len(task.data.train.y) // cfg.batch_size)  # the sampler's epoch
        if s.score_schedule == "epoch_cosine":

            def make_tx(c):
                return epoch_cosine_optimizer(c, steps_per_epoch)

            opt_state = MaskedState(make_tx(cfg).init(state.params), state.mask)
            state = replicate(state._replace(opt_state=opt_state), task.mesh)

            def make_trainer(weight):
                return OwnOptimizerTrainer(scored_task, objective_for(weight), make_tx)
        else:

            def make_trainer(weight):
                return Trainer(scored_task, objective=objective_for(weight))

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

    def _train_one(
        self, task: Task, config: TrainConfig, s: dict[str, Any], trainer: Trainer, workdir: pathlib.Path,
        sparsity: float, predict: Callable,
    ) -> tuple[dict[str, Any], TrainState]:
        """Train one score network under ``workdir``; its final sparse model's fields and state."""
        cfg = s["train_config"]
        final_path = workdir / "final"
        t0 = time.perf_counter()
        if checkpoints.item_exists(final_path):
            state = checkpoints.load_item(final_path, s["state"])
        else:
            state = trainer.train(
                s["state"], cfg, s["budget"], data_seed=config.seed, ckpt_dir=workdir / "ckpt", desc=self.name
            )
            checkpoints.save_item(final_path, state)
        train_time = time.perf_counter() - t0

        mask = top_k_mask(state.params["scores"], s["counts"])
        params = materialise(state.params, mask)
        checkpoints.save_item(workdir / "sparse", {"params": params, "mask": mask})
        summary = sparsity_summary(mask, params)
        target = num_keep_for_sparsity(summary["prunable"], sparsity)
        if summary["kept"] != target:
            raise AssertionError(f"FairScratch kept {summary['kept']} weights, target {target}")
        info = task.data.info

        def report(split):
            return evaluate(
                predict, params, state.model_state, split, info.num_classes, info.num_groups, task.mesh,
                config.eval_batch_size,
            )

        final = {
            "level": s["levels"],
            "sparsity": summary["sparsity"],
            "overall_sparsity": summary["overall_sparsity"],
            "kept": summary["kept"],
            "train_time_s": train_time,
            "val": report(task.data.val),
            "test": report(task.data.test),
        }
        return final, state

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        del dense_dir  # trains from scratch: no dense phase to share
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
            final, _ = self._train_one(task, config, s, s["trainer"], workdir, sparsity, predict)
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
                    result, _ = self._train_one(task, config, s, trainer, subdir, sparsity, predict)
                    result = {"fairness_weight": w, **result}
                    checkpoints.write_json(done, result)
                sweep.append(result)
            rows = [(r["fairness_weight"], r["val"]["accuracy"], r["val"][metric]) for r in sweep]
            chosen = select_fairness_weight(rows, st.lambda_tolerance)
            weight = weights[chosen]
            final = {k: v for k, v in sweep[chosen].items() if k != "fairness_weight"}
            final["train_time_s"] = sum(r["train_time_s"] for r in sweep)  # the whole sweep's cost
            like = checkpoints.load_item(workdir / f"lambda_{chosen:02d}" / "final", s["state"])
            mask = top_k_mask(like.params["scores"], s["counts"])
            checkpoints.save_item(workdir / "sparse", {"params": materialise(like.params, mask), "mask": mask})
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
        log(
            f"{self.name} ({self.preset}, λ = {weight:g}): sparsity {final['sparsity']:.3f}  "
            f"val acc {final['val']['accuracy']:.4f}  test acc {final['test']['accuracy']:.4f}  "
            f"CWV {final['test']['cwv']:.5f}  MCD {final['test']['mcd']:.4f}  ({final['train_time_s']:.1f}s)"
        )
        return record
