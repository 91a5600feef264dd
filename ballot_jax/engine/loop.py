"""Training phases: the config, the optimizer, the train state and the ``Trainer`` that runs a
phase, resumable at any point.

Inside a phase, periodic checkpoints let a killed run continue from where it stopped with identical
results, because batches and dropout keys are pure functions of (seed, step). The iterative pruning
loop over phases is ``engine.levels``.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import pathlib
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from ballot_jax import compiler
from ballot_jax.engine import checkpoints
from ballot_jax.engine.device_data import device_train_data, gathering
from ballot_jax.engine.mesh import check_divisible, put_batch, replicate
from ballot_jax.engine.model import Model
from ballot_jax.engine.progress import bar, log
from ballot_jax.samplers import group_index, shuffled_batch, stratified_batch
from ballot_jax.engine.steps import (
    CarriedState,
    Objective,
    TrainState,
    evaluate,
    make_predict,
    make_train_step,
    mean_cross_entropy,
)
from ballot_jax.masks import Mask, Prunable, apply_mask, default_prunable, make_mask
from ballot_jax.objectives import StatefulObjective
from ballot_jax.optim import FixedMaskState, fixed_mask, with_mask

PyTree = Any
OnStep = Callable[[int, "TrainState"], None]  # on_step(step, state) before each training step

# Steps dispatched ahead of the device. A few keep the device busy while the host prepares the next
# batch; an unbounded queue of sharded steps deadlocks XLA:CPU's in-process all-reduce on several
# devices (hundreds of queued steps: "Expected 4 threads to join the rendezvous", then an abort), so
# a mesh of several devices keeps 2. One device has no collective: a deeper queue hides the host's
# per-step work (indices, transfer, dispatch) behind the device's.
MAX_STEPS_IN_FLIGHT = 2
MAX_STEPS_IN_FLIGHT_ONE_DEVICE = 16


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How one training phase runs. Steps count optimizer updates; all defaults are CPU-sized."""

    steps: int = 500
    batch_size: int = 64
    learning_rate: float = 0.05
    optimizer: str = "sgd"  # "sgd" (with momentum) | "adam" | "adamw"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "constant" | "cosine" | "warmup_cosine" | "step"
    warmup_steps: int = 0  # only with schedule="warmup_cosine"
    rewind_step: int = 0  # k: the rewind point θ_k saved during dense training (0 = original LTH)
    rewind_lr: bool = True  # retrain from schedule position k with θ_k's optimizer state
    balanced_sampling: bool = False  # draw every batch with equal examples per group
    checkpoint_every: int = 200  # periodic checkpoints for resume (0: only at phase ends)
    eval_batch_size: int = 512
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if not 0 <= self.rewind_step < self.steps:
            raise ValueError(f"rewind_step must be in [0, steps), got {self.rewind_step}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be sgd, adam or adamw, got {self.optimizer!r}")
        if self.schedule not in ("constant", "cosine", "warmup_cosine", "step"):
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_steps and self.schedule != "warmup_cosine":  # it would be ignored
            raise ValueError(f"warmup_steps={self.warmup_steps} takes effect only with schedule='warmup_cosine' "
                             f"(schedule is {self.schedule!r}): set schedule='warmup_cosine' or warmup_steps=0")


class Task(NamedTuple):
    """What every method trains on: a model, a ``ballot_jax.data.Dataset`` and a device mesh."""

    model: Model
    data: Any
    mesh: Mesh


def make_schedule(config: TrainConfig) -> optax.Schedule:
    """Learning rate as a function of the step, over ``config.steps`` steps."""
    lr, n = config.learning_rate, config.steps
    if config.schedule == "constant":
        return optax.constant_schedule(lr)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, n)
    if config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, max(1, config.warmup_steps), n)
    return optax.piecewise_constant_schedule(lr, {n // 2: 0.1, (3 * n) // 4: 0.1})


def make_optimizer(config: TrainConfig, schedule: optax.Schedule | None = None) -> optax.GradientTransformation:
    """The (unmasked) optax optimizer of ``config`` with its schedule (or ``schedule`` instead)."""
    schedule = make_schedule(config) if schedule is None else schedule
    if config.optimizer == "sgd":
        return optax.chain(optax.add_decayed_weights(config.weight_decay), optax.sgd(schedule, config.momentum))
    if config.optimizer == "adam":
        return optax.adam(schedule)
    return optax.adamw(schedule, weight_decay=config.weight_decay)


def init_state(task: Task, config: TrainConfig, prunable: Prunable = default_prunable) -> TrainState:
    """Fresh dense state θ_0 from ``config.seed`` (replicated on the mesh)."""
    key = jax.random.PRNGKey(config.seed)
    params, model_state = _jitted_init(task.model)(key, jnp.asarray(task.data.train.x[:1]))
    mask = make_mask(params, prunable)
    opt_state = FixedMaskState(make_optimizer(config).init(params), mask)
    state = TrainState(jnp.zeros((), jnp.int32), params, model_state, opt_state, jax.random.fold_in(key, 1))
    return replicate(state, task.mesh)


@functools.lru_cache(maxsize=32)
def _jitted_init(model: Model) -> Callable:
    """``model.init`` as one compiled program per model and process: the same numbers as calling it
    eagerly (checked for the MLP, SmallCNN and ResNet-18), for one compilation instead of one per
    initialiser and shape."""
    return compiler.jit(model.init)


def dense_mask(task: Task, prunable: Prunable = default_prunable) -> Mask:
    """The all-ones mask of ``task``'s model, from its params' shapes alone (``jax.eval_shape``: no
    initialisation, no optimizer, no device placement) -- what a method needs to count weights."""
    shapes = jax.eval_shape(lambda x: task.model.init(jax.random.PRNGKey(0), x)[0], jnp.asarray(task.data.train.x[:1]))
    return make_mask(shapes, prunable)


def reset_optimizer(state: TrainState, config: TrainConfig, mask: Mask) -> TrainState:
    """``state`` with a fresh optimizer (schedule at 0), the new mask, and params masked."""
    params = apply_mask(state.params, mask)
    opt_state = FixedMaskState(make_optimizer(config).init(params), mask)
    return state._replace(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)


def set_mask(state: TrainState, mask: Mask) -> TrainState:
    """``state`` with the new mask and its params masked; optimizer state and step unchanged."""
    return state._replace(params=apply_mask(state.params, mask), opt_state=with_mask(state.opt_state, mask))


# Compiled train steps shared by every Trainer of the process (methods, levels and seeds of a run
# reuse one compilation): keyed by everything a step depends on -- the model's functions, the mesh,
# the optimizer builder, the config without the fields a step never reads, the objective.
_STEP_CACHE: collections.OrderedDict[tuple, Callable] = collections.OrderedDict()
_STEP_CACHE_SIZE = 32
_NOT_IN_STEP = {"seed": 0, "checkpoint_every": 0, "eval_batch_size": 1}  # fields a compiled step never reads


def shared_step(task: Task, make_tx: Callable, config: TrainConfig, objective: Objective) -> Callable:
    """The jitted, sharded train step of (``task``'s model and mesh, ``make_tx(config)``,
    ``objective``), compiled once per process and reused (an LRU of ``_STEP_CACHE_SIZE`` steps)."""
    key = (task.model, task.mesh, make_tx, dataclasses.replace(config, **_NOT_IN_STEP), objective)
    if key in _STEP_CACHE:
        _STEP_CACHE.move_to_end(key)
        return _STEP_CACHE[key]
    tx = fixed_mask(make_tx(config), None)  # the mask is read from the state
    step = _STEP_CACHE[key] = make_train_step(task.model, tx, task.mesh, objective)
    while len(_STEP_CACHE) > _STEP_CACHE_SIZE:
        _STEP_CACHE.popitem(last=False)
    return step


def _checked_extra(extra: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``extra`` as NumPy arrays, each with one row per training example; its names must not shadow
    the batch's own fields."""
    out = {}
    for name, values in extra.items():
        if name in ("x", "y", "group"):
            raise ValueError(f"Trainer extra field {name!r} would replace the batch's own {name!r}: rename it")
        values = np.asarray(values)
        if values.ndim == 0 or len(values) != rows:
            raise ValueError(f"Trainer extra field {name!r} must have one row per training example ({rows}), "
                             f"got shape {values.shape}")
        out[name] = values
    return out


class Trainer:
    """Runs training phases for one task; its steps come from :func:`shared_step` (one compilation
    per (config, objective) in the whole process, shared with every other Trainer of the task).

    ``make_tx(config)`` builds the (unmasked) optimizer of the steps: the engine's by default.
    ``extra`` maps field names to per-example arrays aligned with the training split's rows (e.g. a
    teacher's logits, ``ballot_jax.distillation``): every batch carries them beside ``x``, ``y`` and
    ``group``, so an objective can read them.
    """

    def __init__(
        self,
        task: Task,
        objective: Objective = mean_cross_entropy,
        make_tx: Callable[[TrainConfig], optax.GradientTransformation] = make_optimizer,
        extra: Mapping[str, np.ndarray] | None = None,
    ):
        self.task = task
        self.objective = objective
        self.make_tx = make_tx
        self._group_members: list[np.ndarray] | None = None
        self.predict = make_predict(task.model)
        self.extra = _checked_extra(extra or {}, len(task.data.train.y))
        self._device_extra: tuple[Any, dict[str, jax.Array]] | None = None

    def with_extra(self, extra: Mapping[str, np.ndarray]) -> "Trainer":
        """A copy of this trainer whose batches also carry ``extra`` (per-example training fields)."""
        trainer = copy.copy(self)
        trainer.extra = _checked_extra(extra, len(self.task.data.train.y))
        trainer._device_extra = None
        return trainer

    def _extra_on(self, mesh) -> dict[str, jax.Array]:
        """``extra`` replicated on ``mesh`` (placed once per trainer)."""
        if self._device_extra is None or self._device_extra[0] is not mesh:
            self._device_extra = (mesh, replicate(self.extra, mesh))
        return self._device_extra[1]

    def step_fn(self, config: TrainConfig, objective: Objective | None = None) -> Callable:
        return shared_step(self.task, self.make_tx, config, objective or self.objective)

    def batch_indices(self, config: TrainConfig, step: int, data_seed: int) -> np.ndarray:
        """Training-set rows of the global batch for ``step``: shuffled, or group-balanced when
        ``config.balanced_sampling``."""
        if config.balanced_sampling:
            g = self.task.data.info.num_groups
            if config.batch_size % g:
                raise ValueError(f"balanced sampling needs batch_size divisible by num_groups ({g})")
            return stratified_batch(self._members(), config.batch_size // g, data_seed, step).reshape(-1)
        return shuffled_batch(len(self.task.data.train.y), config.batch_size, data_seed, step)

    def batch(self, config: TrainConfig, step: int, data_seed: int) -> dict[str, Any]:
        """Global batch for ``step`` (host arrays): the rows of :meth:`batch_indices`."""
        train, idx = self.task.data.train, self.batch_indices(config, step, data_seed)
        extra = {k: v[idx] for k, v in self.extra.items()}
        return {"x": train.x[idx], "y": train.y[idx], "group": train.group[idx], **extra}

    def stepped(self, state: Any) -> Any:
        """The part of ``state`` the compiled step reads and writes (all of it here). A subclass whose
        state carries parts its step leaves unchanged returns the rest, so that the compiled step
        does not copy them every step (e.g. an adversary carried through pre-training)."""
        return state

    def with_stepped(self, state: Any, stepped: Any) -> Any:
        """``state`` with its :meth:`stepped` part replaced (the inverse of :meth:`stepped`)."""
        del state
        return stepped

    def _members(self) -> list[np.ndarray]:
        if self._group_members is None:
            self._group_members = group_index(self.task.data.train.group, self.task.data.info.num_groups)
        return self._group_members

    def train(
        self,
        state: TrainState,
        config: TrainConfig,
        until_step: int,
        *,
        data_seed: int,
        ckpt_dir: str | pathlib.Path | None = None,
        on_step: OnStep | None = None,
        desc: str = "train",
        objective: Objective | None = None,
    ) -> TrainState:
        """Train from ``state.step`` up to ``until_step`` (exclusive end), resuming from ``ckpt_dir``.

        ``on_step(step, state)`` runs before every step with the host step number (no device sync;
        used to save the rewind point and to observe the trajectory); ``objective``
        replaces the trainer's default loss for this phase. A ``StatefulObjective`` carries its state
        through the phase: it starts from ``objective.init()``, is checkpointed with the train state
        (``CarriedState``), and the hooks and the result see the train state alone.
        """
        check_divisible(config.batch_size, self.task.mesh)
        phase_objective = objective or self.objective
        carried = isinstance(phase_objective, StatefulObjective)
        state = replicate(CarriedState(state, phase_objective.init()) if carried else state, self.task.mesh)
        view = (lambda s: s.train) if carried else (lambda s: s)  # what hooks and the caller see
        periodic = checkpoints.Periodic(ckpt_dir) if ckpt_dir is not None else None
        if periodic is not None and periodic.latest_step() is not None:
            state = periodic.restore(periodic.latest_step(), state)
            log(f"{desc}: resumed at step {int(state.step)}")
        step_fn = self.step_fn(config, objective)
        mesh = self.task.mesh
        data = device_train_data(self.task.data.train, mesh)
        if data is not None and self.extra:
            data = {**data, **self._extra_on(mesh)}
        gathered = gathering(step_fn, mesh) if data is not None else None  # the step that gathers its batch
        # one process: the host indices go straight into the jitted call (its dispatch places them)
        place_indices = (lambda idx: idx) if jax.process_count() == 1 else (lambda idx: put_batch(idx, mesh))
        start = int(state.step)
        bound = MAX_STEPS_IN_FLIGHT if mesh.devices.size > 1 else MAX_STEPS_IN_FLIGHT_ONE_DEVICE
        in_flight: collections.deque[jax.Array] = collections.deque()
        outer, state = state, self.stepped(state)  # the steps see only their part; hooks and checkpoints all of it
        with bar(until_step, desc, initial=start) as progress:
            for step in range(start, until_step):
                if on_step is not None:
                    on_step(step, view(self.with_stepped(outer, state)))
                if gathered is not None:  # the batch is gathered on the device
                    state, stats = gathered(state, data, place_indices(self.batch_indices(config, step, data_seed)))
                else:
                    state, stats = step_fn(state, put_batch(self.batch(config, step, data_seed), mesh))
                in_flight.append(stats["loss"])
                if len(in_flight) > bound:
                    in_flight.popleft().block_until_ready()
                progress.update(1)
                if not progress.disable and (step % 20 == 0 or step == until_step - 1):  # syncs the host
                    progress.set_postfix(loss=f"{float(stats['loss']):.3f}", acc=f"{float(stats['accuracy']):.3f}")
                done = step + 1
                if periodic is not None and config.checkpoint_every and done % config.checkpoint_every == 0 and done < until_step:
                    periodic.save(done, self.with_stepped(outer, state))
        if periodic is not None:
            periodic.close()
        return view(self.with_stepped(outer, state))

    def evaluate(self, state: TrainState, split) -> dict[str, Any]:
        info = self.task.data.info
        return evaluate(
            self.predict, state.params, state.model_state, split, info.num_classes, info.num_groups, self.task.mesh
        )
