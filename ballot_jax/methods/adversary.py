"""SafeCompress's fairness adversary (the authors' preset): what it sees of an example, its network
(the authors' architecture, Nasr et al.'s membership attack, with one output per group), its loss,
and its chance level. The min-max training against it is ``minmax.py``; ``adversarial_objective``
is the same game as an engine objective that carries the adversary (Ballot's ``disparity="adversary"``).
"""

from __future__ import annotations

import functools

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ballot_jax.engine.steps import _pcast_varying, mean_cross_entropy
from ballot_jax.objectives import StatefulObjective, group_balanced_mean

ADVERSARY_INPUTS = ("label_relative", "softmax_label", "logits_label")
# how the adversary's cross-entropy averages a batch: "examples" (the authors': every example the
# same) | "groups" (every group present the same: a rare group's examples weigh more)
ADVERSARY_BALANCES = ("examples", "groups")
# optional batch field of a one-sided ``adversarial_objective``: float [B], 1 where the term's gradient reaches the
# example's logits, 0 where they enter the adversary's cross-entropy as constants (session 32, C19)
REACH_KEY = "adversary_reach"


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
    shapes = sorted(layers.items())
    normals = _standard_normals(key, tuple(shape for _, shape in shapes))
    # The scaling stays outside the compiled draw: fused into it, XLA rounds some kernels differently.
    return {name: {"kernel": init_std * z, "bias": jnp.zeros((shape[1],), jnp.float32)}
            for (name, shape), z in zip(shapes, normals)}


@functools.partial(jax.jit, static_argnums=1)
def _standard_normals(key: jax.Array, shapes: tuple) -> list[jax.Array]:
    """N(0, 1) draws of ``shapes``, the i-th from ``fold_in(key, i)``: one compiled program instead of
    one per shape (the same numbers as drawing them one by one)."""
    return [jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32) for i, shape in enumerate(shapes)]


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


def adversary_loss(
    params: dict, logits: jax.Array, batch: dict, kind: str, balance: str = "examples"
) -> tuple[jax.Array, jax.Array]:
    """(softmax cross-entropy of the adversary's group prediction, its accuracy) on a batch: the
    example mean (``balance="examples"``) or the mean of the groups' means (``"groups"``)."""
    features, label_code = adversary_features(logits, batch["y"], kind)
    group_logits = apply_adversary(params, features, label_code)
    groups = batch["group"].astype(jnp.int32)
    if balance == "examples":
        ce = mean_cross_entropy(group_logits, {"y": groups})
    elif balance == "groups":
        each = optax.softmax_cross_entropy_with_integer_labels(group_logits, groups)
        ce = group_balanced_mean(each, groups, group_logits.shape[-1])
    else:
        raise ValueError(f"adversary balance must be one of {ADVERSARY_BALANCES}, got {balance!r}")
    return ce, jnp.mean(jnp.argmax(group_logits, -1) == groups)


def group_prior_accuracy(split, num_groups: int) -> float:
    """Accuracy of always predicting the most frequent group (the adversary's chance level)."""
    counts = np.bincount(np.asarray(split.group), minlength=num_groups)
    return float(counts.max() / max(1, counts.sum()))


@functools.lru_cache(maxsize=64)
def adversarial_objective(
    num_groups: int, num_classes: int, weight: float, kind: str = "label_relative", learning_rate: float = 1e-3,
    seed: int = 0, balance: str = "examples", one_sided: bool = False,
) -> StatefulObjective:
    """CE − ``weight`` · the adversary's group cross-entropy, the adversary carried from step to step.

    The min-max game of SafeCompress's authors' preset (``minmax.make_minmax_step``) as an engine
    ``StatefulObjective``: the carry is the adversary's params (the authors' architecture,
    ``init_adversary`` from ``PRNGKey(seed)``) and its Adam state (``learning_rate``), fresh at the
    start of each phase. Every step, on the global batch: (1) one Adam step of the adversary on its
    cross-entropy of predicting the group from ``adversary_features(logits, y, kind)`` (logits
    without gradient), (2) the model's loss CE − ``weight`` · the updated adversary's cross-entropy
    (gradient through the logits only). It differs from ``make_minmax_step`` in one respect: the
    adversary learns from the step's own train-mode logits (one forward pass) instead of a second,
    eval-mode pass; the same for models without batch norm or dropout.
    With the default ``kind`` the adversary sees [p_y, the other probabilities sorted], how confident
    and how correct the model is on an example, so maximising its loss pushes the groups' confidence
    and correctness towards one distribution: accuracy parity, what CWV and MCD measure.
    ``balance="groups"`` averages both cross-entropies over the groups present in the batch instead
    of over its examples (``adversary_loss``), so a rare group's confidence and correctness count as
    much as a common one's (ours, not the authors'; session 15).
    ``one_sided`` (session 32, ours): the model's gradient of the term flows only through the logits of the
    examples with ``batch[REACH_KEY]`` = 1; the others' logits enter the adversary's cross-entropy as
    constants (its value, the adversary's own step and the cross-entropy term are unchanged). With
    ``REACH_KEY`` marking the disadvantaged groups, the model can confuse the adversary only by moving
    those groups' outputs, not by lowering the others' (Ballot's ``adversary_reach="below_mean"``).
    Runs inside the engine's sharded step only (the adversary is made per-device before its
    gradient, as in ``make_minmax_step``). Memoised, so the engine reuses its compiled step.
    """
    if kind not in ADVERSARY_INPUTS:
        raise ValueError(f"adversary input must be one of {ADVERSARY_INPUTS}, got {kind!r}")
    if balance not in ADVERSARY_BALANCES:
        raise ValueError(f"adversary balance must be one of {ADVERSARY_BALANCES}, got {balance!r}")
    if weight < 0 or not learning_rate > 0:
        raise ValueError(f"the adversarial weight must be >= 0 and the learning rate > 0, got {weight}, {learning_rate}")
    tx = optax.adam(learning_rate)

    def init():
        adversary = init_adversary(jax.random.PRNGKey(seed), num_classes, num_groups, kind)
        return adversary, tx.init(adversary)

    def apply(logits, batch, carry):
        adversary, opt_state = carry
        seen = jax.lax.stop_gradient(logits)
        grads = jax.grad(lambda a: adversary_loss(a, seen, batch, kind, balance)[0])(_pcast_varying(adversary))
        updates, opt_state = tx.update(grads, opt_state, adversary)
        adversary = optax.apply_updates(adversary, updates)
        attacked = logits
        if one_sided:
            if REACH_KEY not in batch:
                raise ValueError(f"a one-sided adversarial objective needs the batch field {REACH_KEY!r} (1 where the "
                                 "term reaches an example): train with a Trainer given it (Trainer(..., extra=...))")
            attacked = jnp.where(batch[REACH_KEY][:, None] > 0, logits, jax.lax.stop_gradient(logits))
        attack, _ = adversary_loss(adversary, attacked, batch, kind, balance)
        return mean_cross_entropy(logits, batch) - weight * attack, (adversary, opt_state)

    return StatefulObjective(init, apply)
