"""SafeCompress adapted to fairness (after Zhu et al., ASE 2022: test-driven sparse training).

Dynamic sparse training at a fixed target sparsity, where a "safety test" on the validation split
decides every mask update, and for us that test is a fairness test:

1. Budget. ``B = config.steps * (levels + 1)`` optimizer steps, the iterative-pruning budget at this
   sparsity (``levels = len(level_plan(mask, sparsity, fraction))``). One training run of ``B`` steps
   with the config's optimizer and a learning-rate schedule stretched over ``B``.
2. Initial mask. ERK (``pruning.erk_keep_counts``): exactly ``num_keep_for_sparsity(N, sparsity)``
   weights kept, per-layer density ∝ (Σ dims)/(Π dims), dense layers redistributed; which entries
   are kept is uniform at random (``pruning.random_mask``). θ_0 is the engine's dense init masked.
3. Mask updates at steps t = u, 2u, ... ≤ ``stop_fraction``·B (u = ``update_every``, default B // 10).
   Drop fraction d_t = d_0 (1 + cos(π t / T_end)) / 2, T_end = ``stop_fraction``·B, d_0 =
   ``drop_fraction``. Per prunable leaf with a_l active weights: k_l = min(round(d_t·a_l),
   inactive_l) active weights with the smallest |w| are dropped and k_l weights are grown among the
   weights that were inactive before this update, so every leaf keeps its count and the total stays
   exactly the target. Grown weights start at exactly 0 (inactive weights are exactly 0 under the
   masked optimizer) with zeroed optimizer moments.
4. Candidates. ``candidates`` lists the masks the safety test compares, in order of preference:
   "gradient" grows by |∂L/∂w| on the next training batch (RigL), each "random" grows uniformly at
   random (its own key), "keep" leaves the mask unchanged. All non-"keep" candidates drop the same
   weights, so they differ only in what they grow: an untrained evaluation could not tell them
   apart. Each candidate therefore trains for ``probe_steps`` = round(``probe_fraction``·u) steps on
   the run's own next batches (the steps the run takes next anyway), then is evaluated.
5. Safety test (fairness). On the VALIDATION split, among candidates whose accuracy is within
   ``acc_tolerance`` of the best candidate's, pick the lowest ``fairness_metric`` (MCD by default);
   ties go to the earlier candidate. The winner's probed state continues training (its probe steps
   are part of the budget; the other candidates' probe steps are extra, reported as
   ``probe_steps_extra``).
6. The final model (at step B) is evaluated on validation and test.

Resumable like the engine: each interval between mask updates is one phase trained with
``Trainer.train`` (periodic checkpoints) whose final state is saved; each update's chosen mask and
its test results are saved; ``workdir/record.json`` marks the whole run finished.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, make_optimizer, set_mask
from ballot_jax.engine.mesh import put_batch, replicated
from ballot_jax.engine.progress import log
from ballot_jax.engine.steps import TrainState, mean_cross_entropy
from ballot_jax.masks import Mask, is_unprunable, mask_leaves, sparsity_summary
from ballot_jax.methods.base import Record, budget_steps, finish_record, level_plan
from ballot_jax.optim import MaskedState
from ballot_jax.pruning import erk_keep_counts, keep_top_k_per_leaf, magnitude_scores, random_mask, uniform_scores

PyTree = Any

CANDIDATE_KINDS = ("gradient", "random", "keep")
LOWER_IS_BETTER = (
    "mcd",
    "cwv",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)


# ------------------------------------------------------------------------------------------------
# Pure pieces (tested on their own)


def cosine_drop_fraction(step: int, t_end: int, d0: float) -> float:
    """d_t = d0 (1 + cos(π t / T_end)) / 2 (RigL's cosine decay of the update fraction)."""
    if t_end <= 0:
        return 0.0
    return d0 * (1.0 + math.cos(math.pi * min(step, t_end) / t_end)) / 2.0


def update_schedule(budget: int, update_every: int, stop_fraction: float) -> list[int]:
    """Steps at which the mask is updated: multiples of ``update_every`` in (0, stop_fraction·budget]."""
    if update_every < 1:
        raise ValueError(f"update_every must be >= 1, got {update_every}")
    t_end = int(stop_fraction * budget)
    return [t for t in range(update_every, budget, update_every) if t <= t_end]


def drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """k_l = min(round(d·active_l), inactive_l) per prunable leaf (host integers)."""
    counts = []
    for m in mask_leaves(mask):
        active = int(np.sum(np.asarray(m)))
        counts.append(min(round(drop_fraction * active), int(np.size(m)) - active))
    return counts


def _invert(mask: Mask) -> Mask:
    return jax.tree.map(lambda m: None if m is None else jnp.logical_not(m), mask, is_leaf=is_unprunable)


def drop_and_grow(params: PyTree, mask: Mask, grow_scores: PyTree, counts: Sequence[int]) -> Mask:
    """Drop ``counts[l]`` smallest-|w| active entries of leaf l, grow ``counts[l]`` best-scoring ones
    among the entries inactive before the update; per-leaf active counts are unchanged.

    ``grow_scores`` has the mask's structure (``None`` at unprunable leaves), higher = grow first.
    Ties are broken by position (``pruning.keep_top_k_per_leaf``).
    """
    active = [int(np.sum(np.asarray(m))) for m in mask_leaves(mask)]
    magnitude = magnitude_scores(params, mask)
    kept = keep_top_k_per_leaf(magnitude, mask, jnp.asarray([a - k for a, k in zip(active, counts)], jnp.int32))
    grown = keep_top_k_per_leaf(grow_scores, _invert(mask), jnp.asarray(list(counts), jnp.int32))
    return jax.tree.map(lambda a, b: None if a is None else a | b, kept, grown, is_leaf=is_unprunable)


def start_with_mask(state: TrainState, mask: Mask, config: TrainConfig) -> TrainState:
    """``state`` continuing under ``mask``: dropped weights zeroed (``set_mask``) and the optimizer
    moments of newly grown weights zeroed, so a grown weight starts at exactly 0 with no stale
    momentum. Step, schedule position and the other moments are unchanged."""
    regrown = jax.tree.map(
        lambda new, old, p: jnp.zeros(jnp.shape(p), bool) if new is None else new & ~old,
        mask, state.mask, state.params, is_leaf=is_unprunable,
    )
    inner = optax.tree_utils.tree_map_params(
        make_optimizer(config),
        lambda x, r: jnp.where(r, jnp.zeros_like(x), x),
        state.opt_state.inner_state,
        regrown,
        transform_non_params=lambda x: x,
    )
    state = state._replace(opt_state=MaskedState(inner, state.opt_state.mask))
    return set_mask(state, mask)


def choose_candidate(reports: Sequence[dict], metric: str = "mcd", acc_tolerance: float = 0.02) -> int:
    """The safety test: index of the lowest ``metric`` among candidates whose ``accuracy`` is within
    ``acc_tolerance`` of the best; ties go to the earliest candidate."""
    best_acc = max(r["accuracy"] for r in reports)
    admissible = [i for i, r in enumerate(reports) if r["accuracy"] >= best_acc - acc_tolerance]
    return min(admissible, key=lambda i: (reports[i][metric], i))


def make_grad_fn(model, mesh):
    """``grad(params, model_state, batch, rng)``: ∂(mean cross-entropy)/∂params on a global batch
    (train-mode forward; XLA splits the batch over the mesh), replicated."""

    def grad(params, model_state, batch, rng):
        def loss(p):
            logits, _ = model.apply(p, model_state, batch["x"], True, rng)
            return mean_cross_entropy(logits, batch)

        return jax.grad(loss)(params)

    return jax.jit(grad, out_shardings=replicated(mesh))


# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SafeCompress:
    """Fairness-tested dynamic sparse training (see the module docstring for the algorithm)."""

    fraction: float = 0.2  # only sets the budget: that of iterative pruning at this rate
    drop_fraction: float = 0.3  # d_0 of the cosine-decayed drop fraction
    update_every: int | None = None  # u; None: budget // 10
    stop_fraction: float = 0.75  # no mask updates after this fraction of the budget (T_end)
    candidates: tuple[str, ...] = ("gradient", "random", "random", "keep")  # preference order
    probe_fraction: float = 0.2  # each candidate trains round(probe_fraction * u) steps before the test
    fairness_metric: str = "mcd"  # safety-test metric on the validation split (lower is better)
    acc_tolerance: float = 0.02  # admissible: val accuracy >= best candidate's - acc_tolerance
    name: str = "safecompress"

    def __post_init__(self):
        if not self.candidates or any(c not in CANDIDATE_KINDS for c in self.candidates):
            raise ValueError(f"candidates must be a non-empty tuple of {CANDIDATE_KINDS}, got {self.candidates}")
        if self.fairness_metric not in LOWER_IS_BETTER:
            raise ValueError(f"fairness_metric must be one of {LOWER_IS_BETTER}, got {self.fairness_metric!r}")
        if not 0.0 <= self.drop_fraction <= 1.0 or not 0.0 <= self.stop_fraction <= 1.0:
            raise ValueError("drop_fraction and stop_fraction must be in [0, 1]")
        if not 0.0 <= self.probe_fraction <= 1.0 or self.acc_tolerance < 0:
            raise ValueError("probe_fraction must be in [0, 1] and acc_tolerance >= 0")

    def plan(self, task: Task, config: TrainConfig, sparsity: float) -> dict[str, Any]:
        """Budget, the phase config, the ERK counts and the update steps of a run."""
        if self.fairness_metric not in ("mcd", "cwv") and task.data.info.num_classes != 2:
            raise ValueError(f"fairness_metric {self.fairness_metric!r} needs binary targets")
        mask = init_state(task, config).mask
        levels = len(level_plan(mask, sparsity, self.fraction))
        budget = budget_steps(config, levels)
        every = self.update_every or max(1, budget // 10)
        return {
            "levels": levels,
            "budget": budget,
            "train_config": dataclasses.replace(config, steps=budget, rewind_step=0),
            "keep_counts": erk_keep_counts(mask, sparsity),
            "update_every": every,
            "updates": update_schedule(budget, every, self.stop_fraction),
            "probe_steps": round(self.probe_fraction * every),
        }

    def candidate_masks(self, state: TrainState, grads: PyTree, drop: float, key: jax.Array) -> list[Mask]:
        """The candidate masks of one update, in ``self.candidates`` order."""
        counts = drop_counts(state.mask, drop)
        out = []
        for i, kind in enumerate(self.candidates):
            if kind == "keep":
                out.append(state.mask)
                continue
            if kind == "gradient":
                scores = jax.tree.map(
                    lambda m, g: None if m is None else jnp.abs(g), state.mask, grads, is_leaf=is_unprunable
                )
            else:
                scores = uniform_scores(jax.random.fold_in(key, i), state.mask)
            out.append(drop_and_grow(state.params, state.mask, scores, counts))
        return out

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        del dense_dir  # sparse from the start: no dense phase to share
        workdir = pathlib.Path(workdir)
        record_path = workdir / "record.json"
        if record_path.exists():
            return checkpoints.read_json(record_path)
        plan = self.plan(task, config, sparsity)
        cfg, budget, updates = plan["train_config"], plan["budget"], plan["updates"]
        trainer = Trainer(task)
        grad_fn = make_grad_fn(task.model, task.mesh)
        data_seed = config.seed
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5AFE)
        boundaries = [0, *updates, budget]
        t_end = int(self.stop_fraction * budget)
        total_time, extra_probe_steps, history = 0.0, 0, []

        # Phase 0 starts from θ_0 under the ERK random mask.
        fresh = init_state(task, cfg)
        mask_path = workdir / "mask_00"
        if checkpoints.item_exists(mask_path):
            mask = checkpoints.load_item(mask_path, fresh.mask)
        else:
            mask = random_mask(jax.random.fold_in(key, 0), fresh.mask, plan["keep_counts"])
            checkpoints.save_item(mask_path, mask)
        state = set_mask(fresh, jax.device_put(mask, replicated(task.mesh)))

        for j in range(len(boundaries) - 1):
            start, end = boundaries[j], boundaries[j + 1]
            phase_dir = workdir / f"phase_{j:02d}"
            if j > 0:
                state, info, seconds, extra = self._update(
                    trainer, grad_fn, state, cfg, j, start, end, t_end, data_seed, key, plan, workdir
                )
                history.append(info)
                total_time += seconds
                extra_probe_steps += extra
            state, seconds = self._phase(trainer, state, cfg, end, data_seed, phase_dir, j)
            total_time += seconds

        summary = sparsity_summary(state.mask, state.params)
        target = plan["keep_counts"]
        if summary["kept"] != sum(target):
            raise AssertionError(f"SafeCompress kept {summary['kept']} weights, target {sum(target)}")
        final = {
            "level": plan["levels"],
            "sparsity": summary["sparsity"],
            "overall_sparsity": summary["overall_sparsity"],
            "kept": summary["kept"],
            "train_time_s": total_time,
            "val": trainer.evaluate(state, task.data.val),
            "test": trainer.evaluate(state, task.data.test),
        }
        record = finish_record(
            self.name, sparsity, final,
            budget_steps=budget, update_every=plan["update_every"], probe_steps=plan["probe_steps"],
            probe_steps_extra=extra_probe_steps, fairness_metric=self.fairness_metric,
            acc_tolerance=self.acc_tolerance, mask_updates=history,
        )
        checkpoints.write_json(record_path, record)
        log(
            f"{self.name}: sparsity {final['sparsity']:.3f}  val acc {final['val']['accuracy']:.4f}  "
            f"test acc {final['test']['accuracy']:.4f}  CWV {final['test']['cwv']:.5f}  "
            f"MCD {final['test']['mcd']:.4f}  ({total_time:.1f}s)"
        )
        return record

    # -- one phase, one update -------------------------------------------------------------------

    def _phase(self, trainer, state, cfg, end, data_seed, phase_dir, j):
        """Train to step ``end``, or load the finished phase; returns (state, seconds spent)."""
        final_path, record_path = phase_dir / "final", phase_dir / "record.json"
        if checkpoints.item_exists(final_path) and record_path.exists():
            return checkpoints.load_item(final_path, state), checkpoints.read_json(record_path)["train_time_s"]
        start = int(state.step)
        t0 = time.perf_counter()
        state = trainer.train(
            state, cfg, end, data_seed=data_seed, ckpt_dir=phase_dir / "ckpt", desc=f"{self.name} phase {j}"
        )
        seconds = time.perf_counter() - t0
        checkpoints.save_item(final_path, state)
        checkpoints.write_json(record_path, {"phase": j, "start": start, "end": end, "train_time_s": seconds})
        return state, seconds

    def _update(self, trainer, grad_fn, state, cfg, j, step, end, t_end, data_seed, key, plan, workdir):
        """Mask update ``j`` at ``step``: build candidates, probe, test, keep the winner.

        Returns (state to start phase j from, the update's record, seconds, extra probe steps).
        """
        update_dir = workdir / f"update_{j:02d}"
        mask_path, info_path = update_dir / "mask", update_dir / "safety.json"
        if checkpoints.item_exists(mask_path) and info_path.exists():
            mask = checkpoints.load_item(mask_path, state.mask)
            info = checkpoints.read_json(info_path)
            return start_with_mask(state, mask, cfg), info, info["time_s"], info["probe_steps_extra"]
        t0 = time.perf_counter()
        drop = cosine_drop_fraction(step, t_end, self.drop_fraction)
        batch = put_batch(trainer.batch(cfg, step, data_seed), trainer.task.mesh)
        grads = grad_fn(state.params, state.model_state, batch, jax.random.fold_in(state.rng, step))
        masks = self.candidate_masks(state, grads, drop, jax.random.fold_in(key, j))
        probe_until = min(step + plan["probe_steps"], end)
        probed, reports = [], []
        for i, m in enumerate(masks):
            s = start_with_mask(state, m, cfg)
            if probe_until > step:
                s = trainer.train(s, cfg, probe_until, data_seed=data_seed, desc=f"{self.name} probe {j}.{i}")
            probed.append(s)
            reports.append(trainer.evaluate(s, trainer.task.data.val))
        chosen = choose_candidate(reports, self.fairness_metric, self.acc_tolerance)
        extra = (len(masks) - 1) * (probe_until - step)
        info = {
            "update": j,
            "step": step,
            "drop_fraction": drop,
            "drop_counts": drop_counts(state.mask, drop),
            "chosen": chosen,
            "chosen_kind": self.candidates[chosen],
            "candidates": [
                {"kind": kind, "val_accuracy": r["accuracy"], **{k: r[k] for k in LOWER_IS_BETTER if k in r}}
                for kind, r in zip(self.candidates, reports)
            ],
        }
        info["time_s"] = time.perf_counter() - t0
        info["probe_steps_extra"] = extra
        checkpoints.save_item(mask_path, masks[chosen])
        checkpoints.write_json(info_path, info)
        log(
            f"{self.name} update {j} at step {step}: drop {drop:.3f}, chose {self.candidates[chosen]} "
            f"(val acc {reports[chosen]['accuracy']:.4f}, {self.fairness_metric} "
            f"{reports[chosen][self.fairness_metric]:.4f})"
        )
        # The winner's probe steps are the phase's first steps (batches are a function of the step,
        # so a resumed run that retrains them from ``step`` gets the identical state).
        return probed[chosen], info, info["time_s"], extra
