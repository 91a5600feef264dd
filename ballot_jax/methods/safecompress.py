"""SafeCompress (Zhu, Wang, Han, ASE 2022: test-driven sparse training), adapted to fairness.

Two presets share dynamic sparse training at a fixed target sparsity (ERK random initial mask,
magnitude drop, growth, constant per-layer counts) and differ in what makes the model "safe":

``preset="authors"`` (default): the method as the authors' code runs it (github.com/JiePKU/
MIA-SafeCompress, commit b399006: ``main.py``, ``train.py``, ``sparselearning/core.py``), with their
membership-inference adversary replaced by a fairness adversary:

1. Budget. ``B = config.steps * (levels + 1)`` optimizer steps (the iterative-pruning budget at this
   sparsity), one run with the config's optimizer and a learning-rate schedule stretched over ``B``.
2. Initial mask. ERK counts (``layer_budgets.erk_keep_counts``), exactly ``num_keep_for_sparsity(N, Ω)``
   weights, uniformly random entries (``pruning.random_mask``); θ_0 is the engine's dense init.
3. Mask updates every u steps until the end: t = u, 2u, ... < B, u = ``update_every`` (default
   round(B · 4000 / 117300): their README runs ``--update_frequency 4000`` for 300 epochs of 391
   CIFAR-100 batches, 117,300 steps, so 29 updates; the same fraction of our budget gives the same
   count). Drop fraction d_t = d_min + (d_0 − d_min)(1 + cos(π t / B)) / 2 with d_0 = 0.5, d_min =
   0.005 (their ``CosineDecay``: ``CosineAnnealingLR`` over all steps, ``eta_min=0.005``).
   Per prunable leaf with a_l active weights, k_l = ceil(d_t · a_l) active weights with the smallest
   |w| are dropped, then k_l weights are grown uniformly at random among all weights inactive after
   the drop (``growth="random"``, their default; a just-dropped weight may be regrown and then keeps
   its value and momentum, as in their code). ``growth="gradient"`` grows the largest |∂CE/∂w| on
   the next batch instead. Grown weights start at 0 with zeroed optimizer moments.
4. Safety test: logged, never deciding. Before every update the model's validation metrics and the
   adversary's validation accuracy go into the record (their ``Attack_Test`` trains an attack and
   only prints its accuracy).
5. Min-max training. For the first ``pretrain_fraction`` · B steps (199/300: their
   ``--pretrain_epoch 200`` of ``--epochs 300``) the loss is plain cross-entropy. After that, every
   step first updates the adversary (Adam, lr 1e-3) on the current model's eval-mode outputs, then
   updates the model with CE − λ · adversary CE (λ = 0.5), so the model maximises the adversary's
   loss. The adversary predicts the example's sensitive group from the model's output
   (``adversary_input``, see ``adversary_features``); its architecture is theirs (a prediction branch
   1024-512-64, a label branch 512-64 when the label is an input, a fused head 256-64, ReLU, weights
   N(0, 0.01²), zero biases), with one output per group and softmax cross-entropy.
6. The final model (step B) is evaluated on validation and test.

``preset="ours"``: the earlier adaptation, kept bit-for-bit: updates until 0.75 · B every B // 10
steps with d_t = 0.3 (1 + cos(π t / T_end)) / 2, round(d_t · a_l) dropped, growth among the weights
inactive before the update, and a safety test on the validation split that CHOOSES the mask among
candidates ("gradient", "random", "random", "keep") after a short probe, by the lowest MCD among those
within 0.02 of the best accuracy. Training is plain cross-entropy.

Resumable like the engine: each interval between mask updates (and, for the authors' preset, the
start of the min-max period) is one phase trained with ``Trainer.train`` (periodic checkpoints, the
adversary and its optimizer state inside the checkpointed state) whose final state is saved; each
update's mask and its log are saved; ``workdir/record.json`` marks the whole run finished.

The pieces: options, checks and the run schedule (budget, update steps) ``safecompress_options.py``;
drop and growth ``ballot_jax.drop_grow`` (the core); candidates and grown weights
``dynamic_sparse.py``; the adversary ``adversary.py``; min-max training ``minmax.py``; phases on
disk ``engine/phases.py``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any, Sequence

import jax
import optax

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, set_mask
from ballot_jax.engine.mesh import put_batch, replicate, replicated
from ballot_jax.engine.phases import describe, final_record, finished_phase, saved_item, train_phase
from ballot_jax.engine.progress import log
from ballot_jax.engine.steps import TrainState
from ballot_jax.masks import Mask
from ballot_jax.methods.adversary import group_prior_accuracy, init_adversary
from ballot_jax.methods.base import Record, finish_record, validation_problem
from ballot_jax.drop_grow import ceil_drop_counts, cosine_drop_fraction, drop_and_grow, drop_counts, regrown_dropped
from ballot_jax.methods.dynamic_sparse import candidate_masks, make_grad_fn, start_with_mask
from ballot_jax.methods.minmax import AdversarialTrainer, SafeState
from ballot_jax.methods.safecompress_options import LOWER_IS_BETTER, SafeCompressOptions
from ballot_jax.pruning import magnitude_scores, random_mask, uniform_scores

PyTree = Any
RANDOM_MASK_STREAM = 0x5AFE  # the initial random (ERK) mask draws from fold_in(PRNGKey(seed), this)


def choose_candidate(reports: Sequence[dict], metric: str = "mcd", acc_tolerance: float = 0.02) -> int:
    """Our preset's safety test: index of the lowest ``metric`` among candidates whose ``accuracy`` is
    within ``acc_tolerance`` of the best; ties go to the earliest candidate."""
    best_acc = max(r["accuracy"] for r in reports)
    admissible = [i for i, r in enumerate(reports) if r["accuracy"] >= best_acc - acc_tolerance]
    return min(admissible, key=lambda i: (reports[i][metric], i))


@dataclasses.dataclass(frozen=True)
class SafeCompress(SafeCompressOptions):
    """SafeCompress at a fixed sparsity, ``preset="authors"`` or ``"ours"`` (see the module docstring).

    Options left ``None`` take the preset's value (``PRESET_DEFAULTS``; ``update_every``: authors
    round(B · 4000/117300), ours B // 10). Options marked (ours) or (authors) only apply to that
    preset; setting one away from its default under the other preset is an error. The options, their
    checks and ``run_schedule`` are ``SafeCompressOptions`` (safecompress_options.py).
    """

    def candidate_masks(self, state: TrainState, grads: PyTree, drop: float, key: jax.Array) -> list[Mask]:
        """Our preset: the candidate masks of one update, in ``self.candidates`` order."""
        counts = drop_counts(state.mask, drop)
        return candidate_masks(state.params, state.mask, grads, counts, self.candidates, key)

    def validation_reads(self) -> list[str]:
        """What this configuration chooses on the validation split: our preset's safety test (the authors' only logs
        its validation metrics)."""
        return ["preset='ours' (each mask update's candidate chosen by the safety test)"] if self.preset == "ours" else []

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        del dense_dir  # sparse from the start: no dense phase to share
        if problem := validation_problem(self, task.data.val.num_examples):  # before any training
            raise ValueError(problem)
        workdir = pathlib.Path(workdir)
        record_path = workdir / "record.json"
        if record_path.exists():
            return checkpoints.read_json(record_path)
        if self.preset == "authors":
            record = self._run_authors(task, config, sparsity, workdir)
        else:
            record = self._run_ours(task, config, sparsity, workdir)
        checkpoints.write_json(record_path, record)
        log(f"{self.name} ({self.preset}): {describe(record)}")
        return record

    # -- shared --------------------------------------------------------------------------------

    def _initial_mask(self, fresh, run_schedule, key, workdir) -> Mask:
        """The ERK random mask of θ_0 (``workdir/mask_00``)."""
        return saved_item(
            workdir / "mask_00", fresh.mask,
            lambda: random_mask(jax.random.fold_in(key, 0), fresh.mask, run_schedule["keep_counts"]),
        )

    def _final(self, trainer, state, run_schedule, total_time) -> dict[str, Any]:
        """The final model's record (exactly the ERK count kept: checked)."""
        final = final_record(
            run_schedule["levels"], state.mask, state.params, total_time, lambda split: trainer.evaluate(state, split),
            trainer.task.data,
        )
        target = run_schedule["keep_counts"]
        if final["kept"] != sum(target):
            raise AssertionError(f"SafeCompress kept {final['kept']} weights, target {sum(target)}")
        return final

    def _phase(self, trainer, state, cfg, end, data_seed, phase_dir, j):
        """Train to step ``end``, or load the finished phase; returns (state, seconds spent)."""
        finished = finished_phase(phase_dir, state)
        if finished is not None:
            return finished[0], finished[1]["train_time_s"]
        start = int(state.step)
        state, seconds = train_phase(
            trainer, state, cfg, end, phase_dir, data_seed=data_seed, desc=f"{self.name} phase {j}"
        )
        checkpoints.write_json(
            phase_dir / "record.json", {"phase": j, "start": start, "end": end, "train_time_s": seconds}
        )
        return state, seconds

    # -- the authors' preset -------------------------------------------------------------------

    def _run_authors(self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path) -> Record:
        run_schedule = self.run_schedule(task, config, sparsity)
        cfg, budget, updates = run_schedule["train_config"], run_schedule["budget"], run_schedule["updates"]
        pretrain = run_schedule["pretrain_steps"]
        info = task.data.info
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), RANDOM_MASK_STREAM)
        adversary_tx = optax.adam(self.adversary_learning_rate)
        common = dict(weight=self.adversarial_weight, kind=self.adversary_input, adversary_tx=adversary_tx)
        plain = AdversarialTrainer(task, minmax=False, **common)
        minmax = AdversarialTrainer(task, minmax=True, **common)
        grad_fn = make_grad_fn(task.model, task.mesh) if self.growth == "gradient" else None

        fresh = init_state(task, cfg)
        mask = self._initial_mask(fresh, run_schedule, key, workdir)
        adversary = init_adversary(
            jax.random.fold_in(key, 0xAD), info.num_classes, info.num_groups, self.adversary_input,
            self.adversary_pred_widths, self.adversary_label_widths, self.adversary_fuse_widths,
            self.adversary_init_std,
        )
        train = set_mask(fresh, jax.device_put(mask, replicated(task.mesh)))
        state = replicate(SafeState(train, adversary, adversary_tx.init(adversary)), task.mesh)
        # Phases end at every mask update and where the min-max period starts.
        boundaries = sorted({0, budget, *updates, min(max(pretrain, 0), budget)})
        total_time, history = 0.0, []
        for j in range(len(boundaries) - 1):
            start, end = boundaries[j], boundaries[j + 1]
            if start in updates:
                state, record, seconds = self._authors_update(
                    plain, grad_fn, state, cfg, len(history) + 1, start, run_schedule, config.seed, key, workdir
                )
                history.append(record)
                total_time += seconds
            trainer = minmax if start >= pretrain else plain
            state, seconds = self._phase(trainer, state, cfg, end, config.seed, workdir / f"phase_{j:02d}", j)
            total_time += seconds

        final = self._final(plain, state, run_schedule, total_time)
        return finish_record(
            self.name, sparsity, final,
            preset="authors", budget_steps=budget, update_every=run_schedule["update_every"],
            drop_fraction=self.setting("drop_fraction"), drop_floor=self.setting("drop_floor"),
            stop_fraction=self.setting("stop_fraction"), growth=self.growth, pretrain_steps=pretrain,
            adversarial_weight=self.adversarial_weight, adversary_input=self.adversary_input,
            adversary={
                "val_accuracy": minmax.adversary_accuracy(state, task.data.val),
                "test_accuracy": minmax.adversary_accuracy(state, task.data.test),
                "val_group_prior": group_prior_accuracy(task.data.val, info.num_groups),
                "test_group_prior": group_prior_accuracy(task.data.test, info.num_groups),
            },
            mask_updates=history,
        )

    def _authors_update(self, trainer, grad_fn, state, cfg, u, step, run_schedule, data_seed, key, workdir):
        """Mask update ``u`` at ``step``: log the safety test, drop by magnitude, grow.

        Returns (state to continue from, the update's record, seconds).
        """
        update_dir = workdir / f"update_{u:02d}"
        finished = finished_phase(update_dir, state.mask, item="mask", record="update.json")
        if finished is not None:
            mask, info = finished
            return state._replace(train=start_with_mask(state.train, mask, cfg)), info, info["time_s"]
        t0 = time.perf_counter()
        # The safety test, logged only (it chooses nothing): the model's validation metrics and
        # the adversary's validation accuracy (untrained during pre-training) before the update.
        val = trainer.evaluate(state, trainer.task.data.val)
        safety = {
            "val_accuracy": val["accuracy"],
            **{k: val[k] for k in LOWER_IS_BETTER if k in val},
            "adversary_val_accuracy": trainer.adversary_accuracy(state, trainer.task.data.val),
        }
        drop = cosine_drop_fraction(
            step, run_schedule["t_end"], self.setting("drop_fraction"), self.setting("drop_floor")
        )
        counts = ceil_drop_counts(state.mask, drop)
        if self.growth == "gradient":
            batch = put_batch(trainer.batch(cfg, step, data_seed), trainer.task.mesh)
            grads = grad_fn(state.params, state.model_state, batch, jax.random.fold_in(state.train.rng, step))
            scores = magnitude_scores(grads, state.mask)  # |∂CE/∂w| at the prunable leaves
        else:
            scores = uniform_scores(jax.random.fold_in(key, u), state.mask)
        mask = drop_and_grow(state.params, state.mask, scores, counts, regrow_dropped=True)
        regrown = regrown_dropped(state.params, state.mask, mask, counts)
        info = {"update": u, "step": step, "drop_fraction": drop, "drop_counts": counts, "regrown_dropped": regrown,
                "safety_test": safety}
        info["time_s"] = time.perf_counter() - t0
        checkpoints.save_item(update_dir / "mask", mask)
        checkpoints.write_json(update_dir / "update.json", info)
        log(
            f"{self.name} update {u} at step {step}: drop {drop:.4f} ({sum(counts)} weights), "
            f"safety test: val acc {safety['val_accuracy']:.4f}, MCD {safety['mcd']:.4f}, "
            f"adversary val acc {safety['adversary_val_accuracy']:.4f}"
        )
        return state._replace(train=start_with_mask(state.train, mask, cfg)), info, info["time_s"]

    # -- our preset ----------------------------------------------------------------------------

    def _run_ours(self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path) -> Record:
        run_schedule = self.run_schedule(task, config, sparsity)
        cfg, budget, updates = run_schedule["train_config"], run_schedule["budget"], run_schedule["updates"]
        trainer = Trainer(task)
        grad_fn = make_grad_fn(task.model, task.mesh)
        data_seed = config.seed
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), RANDOM_MASK_STREAM)
        boundaries = [0, *updates, budget]
        total_time, extra_probe_steps, history = 0.0, 0, []

        # Phase 0 starts from θ_0 under the ERK random mask.
        fresh = init_state(task, cfg)
        mask = self._initial_mask(fresh, run_schedule, key, workdir)
        state = set_mask(fresh, jax.device_put(mask, replicated(task.mesh)))

        for j in range(len(boundaries) - 1):
            start, end = boundaries[j], boundaries[j + 1]
            phase_dir = workdir / f"phase_{j:02d}"
            if j > 0:
                state, info, seconds, extra = self._update(
                    trainer, grad_fn, state, cfg, j, start, end, run_schedule["t_end"], data_seed, key, run_schedule,
                    workdir,
                )
                history.append(info)
                total_time += seconds
                extra_probe_steps += extra
            state, seconds = self._phase(trainer, state, cfg, end, data_seed, phase_dir, j)
            total_time += seconds

        final = self._final(trainer, state, run_schedule, total_time)
        return finish_record(
            self.name, sparsity, final,
            preset="ours", budget_steps=budget, update_every=run_schedule["update_every"],
            probe_steps=run_schedule["probe_steps"],
            probe_steps_extra=extra_probe_steps, fairness_metric=self.fairness_metric,
            acc_tolerance=self.acc_tolerance, mask_updates=history,
        )

    def _update(self, trainer, grad_fn, state, cfg, j, step, end, t_end, data_seed, key, run_schedule, workdir):
        """Our preset's mask update ``j`` at ``step``: build candidates, probe, test, keep the winner.

        Returns (state to start phase j from, the update's record, seconds, extra probe steps).
        """
        update_dir = workdir / f"update_{j:02d}"
        finished = finished_phase(update_dir, state.mask, item="mask", record="safety.json")
        if finished is not None:
            mask, info = finished
            return start_with_mask(state, mask, cfg), info, info["time_s"], info["probe_steps_extra"]
        t0 = time.perf_counter()
        drop = cosine_drop_fraction(step, t_end, self.setting("drop_fraction"), self.setting("drop_floor"))
        batch = put_batch(trainer.batch(cfg, step, data_seed), trainer.task.mesh)
        grads = grad_fn(state.params, state.model_state, batch, jax.random.fold_in(state.rng, step))
        masks = self.candidate_masks(state, grads, drop, jax.random.fold_in(key, j))
        probe_until = min(step + run_schedule["probe_steps"], end)
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
        checkpoints.save_item(update_dir / "mask", masks[chosen])
        checkpoints.write_json(update_dir / "safety.json", info)
        log(
            f"{self.name} update {j} at step {step}: drop {drop:.3f}, chose {self.candidates[chosen]} "
            f"(val acc {reports[chosen]['accuracy']:.4f}, {self.fairness_metric} "
            f"{reports[chosen][self.fairness_metric]:.4f})"
        )
        # The winner's probe steps are the phase's first steps (batches are a function of the step,
        # so a resumed run that retrains them from ``step`` gets the identical state).
        return probed[chosen], info, info["time_s"], extra
