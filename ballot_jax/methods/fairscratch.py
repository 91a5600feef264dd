"""FairScratch (after Tang et al., CVPR 2023: learning fair sparse subnetworks from scratch).

Edge-popup over frozen random weights, with a fairness surrogate added to the loss:

1. Budget. ``B = config.steps * (levels + 1)`` optimizer steps, the iterative-pruning budget at this
   sparsity (``levels = len(level_plan(mask, sparsity, fraction))``), one run with a learning-rate
   schedule over ``B``. The optimizer is FairScratch's own (edge-popup's recipe), not the run's:
   ``score_optimizer`` "sgd" with ``score_momentum`` 0.9, ``score_learning_rate`` 0.1,
   ``score_weight_decay`` 0, ``score_schedule`` "cosine" (the run's ``warmup_steps``, batch size,
   sampling, checkpointing and seed are kept). It updates the scores and the unprunable params.
2. Frozen weights. θ_0 is the engine's dense init (same seed, same weights the other methods start
   from). Every prunable weight is replaced by a signed constant and never changes:
   ``weight_init="signed_kaiming"`` (default): sign(w_0)·√(2 / fan_in) (edge-popup's "signed Kaiming
   constant", ReLU gain); "signed_constant": sign(w_0)·std(layer's w_0); "init": w_0 itself. With
   ``scale_fan`` (off by default) the weights are further divided by √density, density = k / N
   (edge-popup's ``scale_fan``: the fan-in that survives pruning; it makes the initial logits larger,
   which with λ = 1 can let the "loss_var" surrogate collapse a small CNN to constant outputs).
   Unprunable params (biases, norm scales, any leaf the ``prunable`` filter rejects) are trained
   normally.
3. Scores. Every prunable weight has a learnable real score s, initialised U(−1/√fan_in, 1/√fan_in)
   (fan_in = product of all kernel dimensions but the last; edge-popup's Kaiming-uniform init).
4. Forward pass. m = top-k of |s| with exactly k = ``num_keep_for_sparsity(N, sparsity)`` weights
   kept: ranked globally (``scope="global"``, default) or per layer (``scope="layer"``: k split
   over layers in proportion to their sizes, rounded so the total is exactly k). The network runs on
   w·m. Straight-through estimator through the |s| the mask ranks: ∂m/∂|s| := 1, so
   ∂L/∂s = ∂L/∂(w·m)·w·sign(s) for every weight, kept or not (the forward value is exactly w·m:
   m_ste = sg(m) + (|s| − sg(|s|))). A gradient step thus moves |s| (the ranking key) the same way
   for positive and negative scores.
5. Loss = cross-entropy + λ·surrogate (λ = ``fairness_weight``, default 1.0), per device shard:
   "dp" (binary targets): max − min over the groups in the batch of the mean predicted P(y=1);
   "eo" (binary): the same among examples with y = 1; "loss_var": population variance of the
   per-group mean cross-entropies over the groups in the batch. ``surrogate="auto"`` (default) is
   "dp" when ``num_classes == 2`` and "loss_var" otherwise.
6. Final model. The final sparse model is frozen weights · final top-k mask (and the trained
   unprunable params); it is evaluated with the engine's ``evaluate`` on the original model, and
   ``kept`` is exactly k.

Engine reuse: the score network is itself an engine ``Model`` whose params are
``{"scores", "free", "frozen"}``; the frozen weights are params too (so they are data, not constants
compiled into the step), and the masked optimizer holds them with a False mask, so they get exactly
zero updates and stay bitwise equal (the same guarantee that keeps pruned weights at 0). The
engine's sharded train step, ``Trainer.train`` (periodic checkpoints, resume) and samplers run
unchanged; ``workdir/record.json`` marks the run finished.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.model import Model
from ballot_jax.engine.progress import log
from ballot_jax.engine.steps import TrainState, evaluate, make_predict
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
from ballot_jax.objectives import SURROGATES, fair_objective, resolve_surrogate
from ballot_jax.optim import with_mask
from ballot_jax.pruning import distribute_keep_counts, keep_top_k_global, keep_top_k_per_leaf, num_keep_for_sparsity

PyTree = Any
# ------------------------------------------------------------------------------------------------
# The score network


WEIGHT_INITS = ("signed_kaiming", "signed_constant", "init")


def fan_in(shape: Sequence[int]) -> int:
    """Product of all kernel dimensions but the last (Dense: inputs; conv HWIO: H·W·I)."""
    return max(1, int(np.prod(shape[:-1])))


def signed_constant(params: PyTree, template: Mask) -> PyTree:
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
    elif weight_init == "signed_constant":
        frozen = signed_constant(params, template)
    elif weight_init == "init":
        frozen = jax.tree.map(lambda m, p: None if m is None else p, template, params, is_leaf=is_unprunable)
    else:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
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
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")

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


def freeze(state: TrainState) -> TrainState:
    """``state`` whose masked optimizer gives the frozen weights exactly zero updates (mask False)."""
    mask = {
        "scores": jax.tree.map(lambda s: None, state.params["scores"]),
        "free": jax.tree.map(lambda f: None, state.params["free"]),
        "frozen": jax.tree.map(lambda w: jnp.zeros(jnp.shape(w), bool), state.params["frozen"]),
    }
    return state._replace(opt_state=with_mask(state.opt_state, mask))


def _never(path, leaf) -> bool:
    del path, leaf
    return False


# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FairScratch:
    """Fair edge-popup from scratch (see the module docstring for the algorithm)."""

    fraction: float = 0.2  # only sets the budget: that of iterative pruning at this rate
    scope: str = "global"  # top-k over all prunable weights ("global") or per layer ("layer")
    # frozen weights: sign(w_0)·√(2/fan_in) | "signed_constant": sign(w_0)·std(layer's w_0) | "init": w_0
    weight_init: str = "signed_kaiming"
    scale_fan: bool = False  # divide the frozen weights by √density (density = kept / prunable)
    surrogate: str = "auto"  # "auto" ("dp" if binary else "loss_var") | "dp" | "eo" | "loss_var"
    fairness_weight: float = 1.0  # λ in CE + λ·surrogate
    # FairScratch's own optimizer (edge-popup's recipe), used instead of the run's optimizer settings
    # for the scores and the unprunable params; the step budget, batch size and sampling are the run's.
    score_optimizer: str = "sgd"  # "sgd" (with score_momentum) | "adam" | "adamw"
    score_learning_rate: float = 0.1
    score_momentum: float = 0.9
    score_weight_decay: float = 0.0  # on the scores and the unprunable params
    score_schedule: str = "cosine"  # over the whole budget; "constant" | "cosine" | "warmup_cosine" | "step"
    name: str = "fairscratch"

    def __post_init__(self):
        if self.scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {self.scope!r}")
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {self.weight_init!r}")
        if self.score_optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"score_optimizer must be sgd, adam or adamw, got {self.score_optimizer!r}")
        if self.score_schedule not in ("constant", "cosine", "warmup_cosine", "step"):
            raise ValueError(f"unknown score_schedule {self.score_schedule!r}")
        if not self.score_learning_rate > 0:
            raise ValueError("score_learning_rate must be > 0")
        if self.score_weight_decay < 0:
            raise ValueError("score_weight_decay must be >= 0")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if self.fairness_weight < 0:
            raise ValueError("fairness_weight must be >= 0")

    def train_config(self, config: TrainConfig, budget: int) -> TrainConfig:
        """The run's ``config`` over ``budget`` steps with FairScratch's own optimizer settings."""
        return dataclasses.replace(
            config, steps=budget, rewind_step=0, optimizer=self.score_optimizer,
            learning_rate=self.score_learning_rate, momentum=self.score_momentum,
            weight_decay=self.score_weight_decay, schedule=self.score_schedule,
        )

    def setup(self, task: Task, config: TrainConfig, sparsity: float) -> dict[str, Any]:
        """Budget, the score network's task and trainer, and its initial (frozen-masked) state."""
        template = init_state(task, config).mask
        levels = len(level_plan(template, sparsity, self.fraction))
        budget = budget_steps(config, levels)
        cfg = self.train_config(config, budget)
        counts = keep_counts(template, sparsity, self.scope)
        info = task.data.info
        kind = resolve_surrogate(self.surrogate, info.num_classes)
        scored_task = Task(
            scored_model(task.model, counts, self.weight_init, scale_fan=self.scale_fan), task.data, task.mesh
        )
        trainer = Trainer(scored_task, objective=fair_objective(info.num_groups, kind, self.fairness_weight))
        return {
            "levels": levels,
            "budget": budget,
            "train_config": cfg,
            "counts": counts,
            "surrogate": kind,
            "trainer": trainer,
            "state": freeze(init_state(scored_task, cfg, prunable=_never)),
        }

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        del dense_dir  # trains from scratch: no dense phase to share
        workdir = pathlib.Path(workdir)
        record_path = workdir / "record.json"
        if record_path.exists():
            return checkpoints.read_json(record_path)
        s = self.setup(task, config, sparsity)
        trainer, state, cfg = s["trainer"], s["state"], s["train_config"]

        final_path = workdir / "final"
        t0 = time.perf_counter()
        if checkpoints.item_exists(final_path):
            state = checkpoints.load_item(final_path, state)
        else:
            state = trainer.train(
                state, cfg, s["budget"], data_seed=config.seed, ckpt_dir=workdir / "ckpt", desc=self.name
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
        predict = make_predict(task.model)

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
        record = finish_record(
            self.name, sparsity, final, budget_steps=s["budget"], scope=self.scope, surrogate=s["surrogate"],
            fairness_weight=self.fairness_weight, weight_init=self.weight_init, scale_fan=self.scale_fan,
            optimizer={
                "optimizer": cfg.optimizer, "learning_rate": cfg.learning_rate, "momentum": cfg.momentum,
                "weight_decay": cfg.weight_decay, "schedule": cfg.schedule,
            },
        )
        checkpoints.write_json(record_path, record)
        log(
            f"{self.name}: sparsity {final['sparsity']:.3f}  val acc {final['val']['accuracy']:.4f}  "
            f"test acc {final['test']['accuracy']:.4f}  CWV {final['test']['cwv']:.5f}  "
            f"MCD {final['test']['mcd']:.4f}  ({train_time:.1f}s)"
        )
        return record
