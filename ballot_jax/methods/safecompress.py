"""SafeCompress (Zhu, Wang, Han, ASE 2022: test-driven sparse training), adapted to fairness.

Two presets share dynamic sparse training at a fixed target sparsity (ERK random initial mask,
magnitude drop, growth, constant per-layer counts) and differ in what makes the model "safe":

``preset="authors"`` (default): the method as the authors' code runs it (github.com/JiePKU/
MIA-SafeCompress, commit b399006: ``main.py``, ``train.py``, ``sparselearning/core.py``), with their
membership-inference adversary replaced by a fairness adversary:

1. Budget. ``B = config.steps * (levels + 1)`` optimizer steps (the iterative-pruning budget at this
   sparsity), one run with the config's optimizer and a learning-rate schedule stretched over ``B``.
2. Initial mask. ERK counts (``pruning.erk_keep_counts``), exactly ``num_keep_for_sparsity(N, Ω)``
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
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, make_optimizer, set_mask
from ballot_jax.engine.mesh import DATA_AXIS, put_batch, replicate, replicated, to_host
from ballot_jax.engine.progress import log
from ballot_jax.engine.samplers import eval_batches
from ballot_jax.engine.steps import TrainState, _gather, _labels, _pcast_varying, mean_cross_entropy
from ballot_jax.masks import Mask, is_unprunable, mask_leaves, sparsity_summary
from ballot_jax.methods.base import Record, budget_steps, finish_record, level_plan
from ballot_jax.optim import MaskedState, masked
from ballot_jax.pruning import erk_keep_counts, keep_top_k_per_leaf, magnitude_scores, random_mask, uniform_scores

PyTree = Any

PRESETS = ("authors", "ours")
CANDIDATE_KINDS = ("gradient", "random", "keep")
GROWTH_KINDS = ("random", "gradient")
ADVERSARY_INPUTS = ("label_relative", "softmax_label", "logits_label")
LOWER_IS_BETTER = (
    "mcd",
    "cwv",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)
# The authors' README (CIFAR-100, 50,000 training images in batches of 128: 391 steps an epoch, 300
# epochs): one mask update every 4,000 of 117,300 steps, 29 updates.
AUTHORS_UPDATE_FRACTION = 4000 / 117_300
# ``--pretrain_epoch 200 --epochs 300`` with 1-indexed epochs: 199 epochs of plain training first.
AUTHORS_PRETRAIN_FRACTION = 199 / 300
# What each preset uses for the options left unset (None).
PRESET_DEFAULTS = {
    "authors": {"drop_fraction": 0.5, "drop_floor": 0.005, "stop_fraction": 1.0},
    "ours": {"drop_fraction": 0.3, "drop_floor": 0.0, "stop_fraction": 0.75},
}


# ------------------------------------------------------------------------------------------------
# Pure pieces (tested on their own)


def cosine_drop_fraction(step: int, t_end: int, d0: float, floor: float = 0.0) -> float:
    """d_t = floor + (d0 − floor)(1 + cos(π t / T_end)) / 2 for t ≤ T_end, ``floor`` after.

    ``floor = 0`` is RigL's cosine decay (our preset); ``floor = 0.005`` is the authors'
    ``CosineDecay`` (PyTorch ``CosineAnnealingLR`` with ``eta_min``).
    """
    if t_end <= 0:
        return floor
    return floor + (d0 - floor) * (1.0 + math.cos(math.pi * min(step, t_end) / t_end)) / 2.0


def update_schedule(budget: int, update_every: int, stop_fraction: float) -> list[int]:
    """Steps at which the mask is updated: multiples of ``update_every`` in (0, stop_fraction·budget]."""
    if update_every < 1:
        raise ValueError(f"update_every must be >= 1, got {update_every}")
    t_end = int(stop_fraction * budget)
    return [t for t in range(update_every, budget, update_every) if t <= t_end]


def drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """Our preset: k_l = min(round(d·active_l), inactive_l) per prunable leaf (host integers)."""
    counts = []
    for m in mask_leaves(mask):
        active = int(np.sum(np.asarray(m)))
        counts.append(min(round(drop_fraction * active), int(np.size(m)) - active))
    return counts


def ceil_drop_counts(mask: Mask, drop_fraction: float) -> list[int]:
    """The authors' preset: k_l = ceil(d·active_l) per prunable leaf (their ``magnitude_death``)."""
    counts = []
    for m in mask_leaves(mask):
        active = int(np.sum(np.asarray(m)))
        counts.append(min(math.ceil(drop_fraction * active), active))
    return counts


def _invert(mask: Mask) -> Mask:
    return jax.tree.map(lambda m: None if m is None else jnp.logical_not(m), mask, is_leaf=is_unprunable)


def drop_and_grow(
    params: PyTree, mask: Mask, grow_scores: PyTree, counts: Sequence[int], regrow_dropped: bool = False
) -> Mask:
    """Drop ``counts[l]`` smallest-|w| active entries of leaf l, grow ``counts[l]`` best-scoring ones;
    per-leaf active counts are unchanged.

    Growth is among the entries inactive before the update (``regrow_dropped=False``, our preset), or
    among all entries inactive after the drop, the just-dropped ones included (``True``, the authors'
    code: a dropped weight that is regrown simply stays). ``grow_scores`` has the mask's structure
    (``None`` at unprunable leaves), higher = grow first; ties by position.
    """
    active = [int(np.sum(np.asarray(m))) for m in mask_leaves(mask)]
    magnitude = magnitude_scores(params, mask)
    kept = keep_top_k_per_leaf(magnitude, mask, jnp.asarray([a - k for a, k in zip(active, counts)], jnp.int32))
    allowed = _invert(kept) if regrow_dropped else _invert(mask)
    grown = keep_top_k_per_leaf(grow_scores, allowed, jnp.asarray(list(counts), jnp.int32))
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
    """Our preset's safety test: index of the lowest ``metric`` among candidates whose ``accuracy`` is
    within ``acc_tolerance`` of the best; ties go to the earliest candidate."""
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
# The fairness adversary (the authors' preset)


def adversary_features(logits: jax.Array, y: jax.Array, kind: str) -> tuple[jax.Array, jax.Array | None]:
    """What the adversary sees of one example: (prediction features [B, C], label code [B, C] or None).

    "label_relative" (default): [p_y, the other C − 1 probabilities sorted in decreasing order], the
    softmax re-ordered around the true label. It carries everything the membership attack reads from
    (output, label), how confident and how correct the model is on the example, but not which label
    it is: with class-wise groups (digits, CIFAR-10) the label alone would reveal the group.
    "softmax_label": softmax and the ±1 one-hot label (the authors' Adversary's inputs, two branches);
    "logits_label": raw logits and the ±1 one-hot label (what their ``mia_train`` literally passes).
    """
    logits = logits.astype(jnp.float32)
    num_classes = logits.shape[-1]
    onehot = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
    if kind == "logits_label":
        return logits, 2.0 * onehot - 1.0
    probs = jax.nn.softmax(logits, axis=-1)
    if kind == "softmax_label":
        return probs, 2.0 * onehot - 1.0
    if kind != "label_relative":
        raise ValueError(f"adversary_input must be one of {ADVERSARY_INPUTS}, got {kind!r}")
    p_true = jnp.sum(probs * onehot, axis=-1, keepdims=True)
    others = jnp.where(onehot > 0, -1.0, probs)  # the true class sorts last and is cut off
    others = -jnp.sort(-others, axis=-1)[:, : num_classes - 1]
    return jnp.concatenate([p_true, others], axis=-1), None


def init_adversary(
    key: jax.Array,
    num_classes: int,
    num_groups: int,
    kind: str,
    pred_widths: Sequence[int] = (1024, 512, 64),
    label_widths: Sequence[int] = (512, 64),
    fuse_widths: Sequence[int] = (256, 64),
    init_std: float = 0.01,
) -> dict[str, dict[str, jax.Array]]:
    """The adversary's params: dense layers ``pred{i}``, ``label{i}`` (only when the label is an
    input), ``fuse{i}`` and ``out`` (one logit per group); kernels N(0, init_std²), biases 0."""
    layers: dict[str, tuple[int, int]] = {}

    def branch(prefix: str, width_in: int, widths: Sequence[int]) -> int:
        for i, w in enumerate(widths):
            layers[f"{prefix}{i}"] = (width_in, int(w))
            width_in = int(w)
        return width_in

    width = branch("pred", num_classes, pred_widths)
    if kind != "label_relative":
        width += branch("label", num_classes, label_widths)
    width = branch("fuse", width, fuse_widths)
    layers["out"] = (width, num_groups)
    params = {}
    for i, (name, (n_in, n_out)) in enumerate(sorted(layers.items())):
        kernel = init_std * jax.random.normal(jax.random.fold_in(key, i), (n_in, n_out), jnp.float32)
        params[name] = {"kernel": kernel, "bias": jnp.zeros((n_out,), jnp.float32)}
    return params


def apply_adversary(params: dict, features: jax.Array, label_code: jax.Array | None) -> jax.Array:
    """Group logits [B, G]: ReLU MLP branches on the features (and the label), concatenated, fused."""

    def run(prefix: str, h: jax.Array) -> jax.Array:
        i = 0
        while f"{prefix}{i}" in params:
            h = jax.nn.relu(h @ params[f"{prefix}{i}"]["kernel"] + params[f"{prefix}{i}"]["bias"])
            i += 1
        return h

    h = run("pred", features)
    if label_code is not None:
        h = jnp.concatenate([h, run("label", label_code)], axis=-1)
    h = run("fuse", h)
    return h @ params["out"]["kernel"] + params["out"]["bias"]


def adversary_loss(params: dict, logits: jax.Array, batch: dict, kind: str) -> tuple[jax.Array, jax.Array]:
    """(mean softmax cross-entropy of the adversary's group prediction, its accuracy) on a batch."""
    features, label_code = adversary_features(logits, batch["y"], kind)
    group_logits = apply_adversary(params, features, label_code)
    groups = batch["group"].astype(jnp.int32)
    ce = optax.softmax_cross_entropy_with_integer_labels(group_logits, groups).mean()
    return ce, jnp.mean(jnp.argmax(group_logits, -1) == groups)


class SafeState(NamedTuple):
    """The authors' preset's resumable state: the model's ``TrainState`` and the adversary's params
    and optimizer state (one pytree, checkpointed together)."""

    train: TrainState
    adversary: PyTree
    adversary_opt: optax.OptState

    @property
    def step(self) -> jax.Array:
        return self.train.step

    @property
    def params(self) -> PyTree:
        return self.train.params

    @property
    def model_state(self) -> PyTree:
        return self.train.model_state

    @property
    def mask(self) -> Mask:
        return self.train.mask


def make_minmax_step(
    model, tx: optax.GradientTransformation, adversary_tx: optax.GradientTransformation, mesh, weight: float, kind: str
) -> Callable[[SafeState, dict], tuple[SafeState, dict[str, jax.Array]]]:
    """One min-max step, jitted and sharded like the engine's train step (``make_train_step``).

    1. Adversary: one ``adversary_tx`` step on its cross-entropy, given the current model's
       eval-mode outputs (no gradient to the model; the authors' ``mia_train`` runs ``model.eval()``).
    2. Model: one ``tx`` step on CE − ``weight`` · (the updated adversary's cross-entropy), train mode
       (their ``train_privately``).
    Both objectives are evaluated on the global batch (outputs and labels gathered across devices,
    ``engine.steps._gather``), so the result does not depend on the device count.
    """

    def local_step(state: SafeState, batch):
        train = state.train
        rng = jax.random.fold_in(jax.random.fold_in(train.rng, train.step), jax.lax.axis_index(DATA_AXIS))
        labels = _gather(_labels(batch))
        seen, _ = model.apply(train.params, train.model_state, batch["x"], False, rng)
        seen = jax.lax.stop_gradient(_gather(seen))

        def attack(adversary):
            return adversary_loss(adversary, seen, labels, kind)

        (adv_before, adv_accuracy), adv_grads = jax.value_and_grad(attack, has_aux=True)(
            _pcast_varying(state.adversary)
        )
        adv_grads = jax.lax.pmean(adv_grads, DATA_AXIS)
        adv_updates, adversary_opt = adversary_tx.update(adv_grads, state.adversary_opt, state.adversary)
        adversary = optax.apply_updates(state.adversary, adv_updates)

        def loss_fn(params):
            logits, model_state = model.apply(params, train.model_state, batch["x"], True, rng)
            everything = _gather(logits)
            ce = mean_cross_entropy(everything, labels)
            adv, _ = adversary_loss(adversary, everything, labels, kind)
            return ce - weight * adv, (logits, model_state, ce, adv)

        (loss, (logits, model_state, ce, adv)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            _pcast_varying(train.params)
        )
        grads = jax.lax.pmean(grads, DATA_AXIS)
        updates, opt_state = tx.update(grads, train.opt_state, train.params)
        params = optax.apply_updates(train.params, updates)
        model_state = jax.lax.pmean(model_state, DATA_AXIS)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["y"])
        stats = {
            "loss": loss,
            "accuracy": accuracy,
            "cross_entropy": ce,
            "adversary_loss": adv,  # the updated adversary's CE on the model's train-mode outputs
            "adversarial_term": weight * adv,
            "adversary_loss_before": adv_before,  # its CE before its own update
            "adversary_accuracy": adv_accuracy,
        }
        stats = {k: jax.lax.pmean(v, DATA_AXIS) for k, v in stats.items()}
        new_train = TrainState(train.step + 1, params, model_state, opt_state, train.rng)
        return SafeState(new_train, adversary, adversary_opt), stats

    sharded = jax.shard_map(local_step, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()))
    return jax.jit(sharded)


class AdversarialTrainer(Trainer):
    """A ``Trainer`` over ``SafeState``: min-max steps (``minmax=True``) or the engine's plain
    cross-entropy step on the model with the adversary carried along unchanged (pre-training)."""

    def __init__(self, task: Task, *, minmax: bool, weight: float, kind: str, adversary_tx):
        super().__init__(task)
        self.minmax, self.weight, self.kind, self.adversary_tx = minmax, weight, kind, adversary_tx
        self._wrapped: dict[TrainConfig, Callable] = {}
        self._attack = None

    def step_fn(self, config: TrainConfig, objective=None) -> Callable:
        if objective is not None:
            raise ValueError("AdversarialTrainer has its own objective")
        if config not in self._wrapped:
            if self.minmax:
                tx = masked(make_optimizer(config), None)  # the mask is read from the state
                self._wrapped[config] = make_minmax_step(
                    self.task.model, tx, self.adversary_tx, self.task.mesh, self.weight, self.kind
                )
            else:
                plain = super().step_fn(config)

                def step(state: SafeState, batch):
                    train, stats = plain(state.train, batch)
                    return state._replace(train=train), stats

                self._wrapped[config] = step
        return self._wrapped[config]

    def adversary_accuracy(self, state: SafeState, split, batch_size: int = 512) -> float:
        """The adversary's group accuracy on a split (the model in eval mode)."""
        if self._attack is None:
            model, kind = self.task.model, self.kind

            def attack(params, model_state, adversary, x, y):
                logits, _ = model.apply(params, model_state, x, False, jax.random.PRNGKey(0))
                features, label_code = adversary_features(logits, y, kind)
                return jnp.argmax(apply_adversary(adversary, features, label_code), -1).astype(jnp.int32)

            self._attack = jax.jit(attack)
        mesh = self.task.mesh
        n_dev = mesh.devices.size
        batch_size = max(n_dev, batch_size - batch_size % n_dev)
        correct = 0
        for idx, valid in eval_batches(len(split.y), batch_size):
            x, y = put_batch(split.x[idx], mesh), put_batch(split.y[idx], mesh)
            pred = np.asarray(to_host(self._attack(state.params, state.model_state, state.adversary, x, y)))
            correct += int(np.sum(pred[:valid] == split.group[idx][:valid]))
        return correct / max(1, len(split.y))


def group_prior_accuracy(split, num_groups: int) -> float:
    """Accuracy of always predicting the most frequent group (the adversary's chance level)."""
    counts = np.bincount(np.asarray(split.group), minlength=num_groups)
    return float(counts.max() / max(1, counts.sum()))


# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SafeCompress:
    """SafeCompress at a fixed sparsity, ``preset="authors"`` or ``"ours"`` (see the module docstring).

    Options left ``None`` take the preset's value (``PRESET_DEFAULTS``; ``update_every``: authors
    round(B · 4000/117300), ours B // 10). Options marked (ours) or (authors) only apply to that
    preset; setting one away from its default under the other preset is an error.
    """

    preset: str = "authors"  # "authors": their method (min-max training, logged test) | "ours"
    fraction: float = 0.2  # only sets the budget: that of iterative pruning at this rate
    drop_fraction: float | None = None  # d_0 of the cosine drop fraction (authors 0.5, ours 0.3)
    drop_floor: float | None = None  # d_min, reached at T_end (authors 0.005, ours 0.0)
    update_every: int | None = None  # u (authors round(B·4000/117300), ours B // 10)
    stop_fraction: float | None = None  # no updates after this fraction of B, T_end (authors 1, ours 0.75)
    # (authors) growth of the dropped count: "random" (their default) | "gradient" (|∂CE/∂w|)
    growth: str = "random"
    # (authors) min-max training against a fairness adversary
    pretrain_fraction: float = AUTHORS_PRETRAIN_FRACTION  # plain CE first (their 199 of 300 epochs)
    adversarial_weight: float = 0.5  # λ in CE − λ·(adversary CE)
    adversary_input: str = "label_relative"  # | "softmax_label" | "logits_label" (adversary_features)
    adversary_learning_rate: float = 1e-3  # Adam
    adversary_pred_widths: tuple[int, ...] = (1024, 512, 64)
    adversary_label_widths: tuple[int, ...] = (512, 64)  # used when the label is an input
    adversary_fuse_widths: tuple[int, ...] = (256, 64)
    adversary_init_std: float = 0.01
    # (ours) candidates and the validation safety test that chooses among them
    candidates: tuple[str, ...] = ("gradient", "random", "random", "keep")  # preference order
    probe_fraction: float = 0.2  # each candidate trains round(probe_fraction * u) steps before the test
    fairness_metric: str = "mcd"  # safety-test metric on the validation split (lower is better)
    acc_tolerance: float = 0.02  # admissible: val accuracy >= best candidate's - acc_tolerance
    name: str = "safecompress"

    AUTHORS_ONLY = (
        "growth", "pretrain_fraction", "adversarial_weight", "adversary_input", "adversary_learning_rate",
        "adversary_pred_widths", "adversary_label_widths", "adversary_fuse_widths", "adversary_init_std",
    )
    OURS_ONLY = ("candidates", "probe_fraction", "fairness_metric", "acc_tolerance")

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        for key in ("candidates", "adversary_pred_widths", "adversary_label_widths", "adversary_fuse_widths"):
            if isinstance(getattr(self, key), list):  # e.g. from a config read back from JSON
                object.__setattr__(self, key, tuple(getattr(self, key)))
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        other = self.OURS_ONLY if self.preset == "authors" else self.AUTHORS_ONLY
        changed = [k for k in other if getattr(self, k) != defaults[k]]
        if changed:
            owner = "ours" if self.preset == "authors" else "authors"
            raise ValueError(f"{changed} only apply to preset={owner!r}, not preset={self.preset!r}")
        if not self.candidates or any(c not in CANDIDATE_KINDS for c in self.candidates):
            raise ValueError(f"candidates must be a non-empty tuple of {CANDIDATE_KINDS}, got {self.candidates}")
        if self.fairness_metric not in LOWER_IS_BETTER:
            raise ValueError(f"fairness_metric must be one of {LOWER_IS_BETTER}, got {self.fairness_metric!r}")
        d0, floor, stop = self.setting("drop_fraction"), self.setting("drop_floor"), self.setting("stop_fraction")
        if not 0.0 <= d0 <= 1.0 or not 0.0 <= stop <= 1.0:
            raise ValueError("drop_fraction and stop_fraction must be in [0, 1]")
        if not 0.0 <= floor <= d0:
            raise ValueError(f"drop_floor must be in [0, drop_fraction], got {floor}")
        if self.update_every is not None and self.update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {self.update_every}")
        if not 0.0 <= self.probe_fraction <= 1.0 or self.acc_tolerance < 0:
            raise ValueError("probe_fraction must be in [0, 1] and acc_tolerance >= 0")
        if self.growth not in GROWTH_KINDS:
            raise ValueError(f"growth must be one of {GROWTH_KINDS}, got {self.growth!r}")
        if self.adversary_input not in ADVERSARY_INPUTS:
            raise ValueError(f"adversary_input must be one of {ADVERSARY_INPUTS}, got {self.adversary_input!r}")
        if not 0.0 <= self.pretrain_fraction <= 1.0:
            raise ValueError(f"pretrain_fraction must be in [0, 1], got {self.pretrain_fraction}")
        if self.adversarial_weight < 0 or not self.adversary_learning_rate > 0 or not self.adversary_init_std > 0:
            raise ValueError("adversarial_weight must be >= 0, adversary_learning_rate and adversary_init_std > 0")
        widths = (*self.adversary_pred_widths, *self.adversary_label_widths, *self.adversary_fuse_widths)
        if any(int(w) < 1 for w in widths):
            raise ValueError("adversary widths must be >= 1")

    def setting(self, key: str) -> Any:
        """An option's value, the preset's default when it is unset (``None``)."""
        value = getattr(self, key)
        return PRESET_DEFAULTS[self.preset][key] if value is None else value

    def validate(self, info) -> list[str]:
        """The problems of these options on a dataset described by ``info`` (``DatasetInfo``)."""
        if self.preset == "ours" and self.fairness_metric not in ("mcd", "cwv") and info.num_classes != 2:
            return [f"fairness_metric={self.fairness_metric!r}: needs binary targets, the dataset has "
                    f"{info.num_classes} classes; expected 'mcd' or 'cwv'"]
        return []

    def plan(self, task: Task, config: TrainConfig, sparsity: float) -> dict[str, Any]:
        """Budget, the phase config, the ERK counts, the update steps and (authors) the pre-training
        steps of a run."""
        problems = self.validate(task.data.info)
        if problems:
            raise ValueError("; ".join(problems))
        mask = init_state(task, config).mask
        levels = len(level_plan(mask, sparsity, self.fraction))
        budget = budget_steps(config, levels)
        if self.update_every is not None:
            every = self.update_every
        elif self.preset == "authors":
            every = max(1, round(AUTHORS_UPDATE_FRACTION * budget))
        else:
            every = max(1, budget // 10)
        stop = self.setting("stop_fraction")
        out = {
            "levels": levels,
            "budget": budget,
            "train_config": dataclasses.replace(config, steps=budget, rewind_step=0),
            "keep_counts": erk_keep_counts(mask, sparsity),
            "update_every": every,
            "updates": update_schedule(budget, every, stop),
            "t_end": int(stop * budget),
        }
        if self.preset == "ours":
            out["probe_steps"] = round(self.probe_fraction * every)
        else:
            out["pretrain_steps"] = round(self.pretrain_fraction * budget)
        return out

    def candidate_masks(self, state: TrainState, grads: PyTree, drop: float, key: jax.Array) -> list[Mask]:
        """Our preset: the candidate masks of one update, in ``self.candidates`` order."""
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
        if self.preset == "authors":
            record = self._run_authors(task, config, sparsity, workdir)
        else:
            record = self._run_ours(task, config, sparsity, workdir)
        checkpoints.write_json(record_path, record)
        final = record
        log(
            f"{self.name} ({self.preset}): sparsity {final['sparsity']:.3f}  val acc {final['val']['accuracy']:.4f}  "
            f"test acc {final['test']['accuracy']:.4f}  CWV {final['test']['cwv']:.5f}  "
            f"MCD {final['test']['mcd']:.4f}  ({final['train_time_s']:.1f}s)"
        )
        return record

    # -- shared --------------------------------------------------------------------------------

    def _initial_mask(self, task, fresh, plan, key, workdir) -> Mask:
        mask_path = workdir / "mask_00"
        if checkpoints.item_exists(mask_path):
            return checkpoints.load_item(mask_path, fresh.mask)
        mask = random_mask(jax.random.fold_in(key, 0), fresh.mask, plan["keep_counts"])
        checkpoints.save_item(mask_path, mask)
        return mask

    def _final(self, trainer, state, plan, total_time) -> dict[str, Any]:
        summary = sparsity_summary(state.mask, state.params)
        target = plan["keep_counts"]
        if summary["kept"] != sum(target):
            raise AssertionError(f"SafeCompress kept {summary['kept']} weights, target {sum(target)}")
        return {
            "level": plan["levels"],
            "sparsity": summary["sparsity"],
            "overall_sparsity": summary["overall_sparsity"],
            "kept": summary["kept"],
            "train_time_s": total_time,
            "val": trainer.evaluate(state, trainer.task.data.val),
            "test": trainer.evaluate(state, trainer.task.data.test),
        }

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

    # -- the authors' preset -------------------------------------------------------------------

    def _run_authors(self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path) -> Record:
        plan = self.plan(task, config, sparsity)
        cfg, budget, updates = plan["train_config"], plan["budget"], plan["updates"]
        pretrain = plan["pretrain_steps"]
        info = task.data.info
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5AFE)
        adversary_tx = optax.adam(self.adversary_learning_rate)
        common = dict(weight=self.adversarial_weight, kind=self.adversary_input, adversary_tx=adversary_tx)
        plain = AdversarialTrainer(task, minmax=False, **common)
        minmax = AdversarialTrainer(task, minmax=True, **common)
        grad_fn = make_grad_fn(task.model, task.mesh) if self.growth == "gradient" else None

        fresh = init_state(task, cfg)
        mask = self._initial_mask(task, fresh, plan, key, workdir)
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
                    plain, grad_fn, state, cfg, len(history) + 1, start, plan, config.seed, key, workdir
                )
                history.append(record)
                total_time += seconds
            trainer = minmax if start >= pretrain else plain
            state, seconds = self._phase(trainer, state, cfg, end, config.seed, workdir / f"phase_{j:02d}", j)
            total_time += seconds

        final = self._final(plain, state, plan, total_time)
        return finish_record(
            self.name, sparsity, final,
            preset="authors", budget_steps=budget, update_every=plan["update_every"],
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

    def _authors_update(self, trainer, grad_fn, state, cfg, u, step, plan, data_seed, key, workdir):
        """Mask update ``u`` at ``step``: log the safety test, drop by magnitude, grow.

        Returns (state to continue from, the update's record, seconds).
        """
        update_dir = workdir / f"update_{u:02d}"
        mask_path, info_path = update_dir / "mask", update_dir / "update.json"
        if checkpoints.item_exists(mask_path) and info_path.exists():
            mask = checkpoints.load_item(mask_path, state.mask)
            info = checkpoints.read_json(info_path)
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
        drop = cosine_drop_fraction(step, plan["t_end"], self.setting("drop_fraction"), self.setting("drop_floor"))
        counts = ceil_drop_counts(state.mask, drop)
        if self.growth == "gradient":
            batch = put_batch(trainer.batch(cfg, step, data_seed), trainer.task.mesh)
            grads = grad_fn(state.params, state.model_state, batch, jax.random.fold_in(state.train.rng, step))
            scores = jax.tree.map(
                lambda m, g: None if m is None else jnp.abs(g), state.mask, grads, is_leaf=is_unprunable
            )
        else:
            scores = uniform_scores(jax.random.fold_in(key, u), state.mask)
        mask = drop_and_grow(state.params, state.mask, scores, counts, regrow_dropped=True)
        regrown = sum(
            int(np.sum(np.asarray(new) & np.asarray(old) & ~np.asarray(kept_by_magnitude)))
            for new, old, kept_by_magnitude in zip(
                mask_leaves(mask), mask_leaves(state.mask), mask_leaves(_magnitude_kept(state, counts))
            )
        )
        info = {
            "update": u,
            "step": step,
            "drop_fraction": drop,
            "drop_counts": counts,
            "regrown_dropped": regrown,
            "safety_test": safety,
        }
        info["time_s"] = time.perf_counter() - t0
        checkpoints.save_item(mask_path, mask)
        checkpoints.write_json(info_path, info)
        log(
            f"{self.name} update {u} at step {step}: drop {drop:.4f} ({sum(counts)} weights), "
            f"safety test: val acc {safety['val_accuracy']:.4f}, MCD {safety['mcd']:.4f}, "
            f"adversary val acc {safety['adversary_val_accuracy']:.4f}"
        )
        return state._replace(train=start_with_mask(state.train, mask, cfg)), info, info["time_s"]

    # -- our preset ----------------------------------------------------------------------------

    def _run_ours(self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path) -> Record:
        plan = self.plan(task, config, sparsity)
        cfg, budget, updates = plan["train_config"], plan["budget"], plan["updates"]
        trainer = Trainer(task)
        grad_fn = make_grad_fn(task.model, task.mesh)
        data_seed = config.seed
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5AFE)
        boundaries = [0, *updates, budget]
        total_time, extra_probe_steps, history = 0.0, 0, []

        # Phase 0 starts from θ_0 under the ERK random mask.
        fresh = init_state(task, cfg)
        mask = self._initial_mask(task, fresh, plan, key, workdir)
        state = set_mask(fresh, jax.device_put(mask, replicated(task.mesh)))

        for j in range(len(boundaries) - 1):
            start, end = boundaries[j], boundaries[j + 1]
            phase_dir = workdir / f"phase_{j:02d}"
            if j > 0:
                state, info, seconds, extra = self._update(
                    trainer, grad_fn, state, cfg, j, start, end, plan["t_end"], data_seed, key, plan, workdir
                )
                history.append(info)
                total_time += seconds
                extra_probe_steps += extra
            state, seconds = self._phase(trainer, state, cfg, end, data_seed, phase_dir, j)
            total_time += seconds

        final = self._final(trainer, state, plan, total_time)
        return finish_record(
            self.name, sparsity, final,
            preset="ours", budget_steps=budget, update_every=plan["update_every"], probe_steps=plan["probe_steps"],
            probe_steps_extra=extra_probe_steps, fairness_metric=self.fairness_metric,
            acc_tolerance=self.acc_tolerance, mask_updates=history,
        )

    def _update(self, trainer, grad_fn, state, cfg, j, step, end, t_end, data_seed, key, plan, workdir):
        """Our preset's mask update ``j`` at ``step``: build candidates, probe, test, keep the winner.

        Returns (state to start phase j from, the update's record, seconds, extra probe steps).
        """
        update_dir = workdir / f"update_{j:02d}"
        mask_path, info_path = update_dir / "mask", update_dir / "safety.json"
        if checkpoints.item_exists(mask_path) and info_path.exists():
            mask = checkpoints.load_item(mask_path, state.mask)
            info = checkpoints.read_json(info_path)
            return start_with_mask(state, mask, cfg), info, info["time_s"], info["probe_steps_extra"]
        t0 = time.perf_counter()
        drop = cosine_drop_fraction(step, t_end, self.setting("drop_fraction"), self.setting("drop_floor"))
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


def _magnitude_kept(state, counts: Sequence[int]) -> Mask:
    """The active weights an update keeps by magnitude (before growth)."""
    active = [int(np.sum(np.asarray(m))) for m in mask_leaves(state.mask)]
    return keep_top_k_per_leaf(
        magnitude_scores(state.params, state.mask), state.mask,
        jnp.asarray([a - k for a, k in zip(active, counts)], jnp.int32),
    )
