"""SafeCompress's fairness adversary (the authors' preset): what it sees of an example, its network
(the authors' architecture, Nasr et al.'s membership attack, with one output per group), its loss,
and its chance level. The min-max training against it is ``minmax.py``.
"""

from __future__ import annotations

import functools

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.engine.steps import mean_cross_entropy

ADVERSARY_INPUTS = ("label_relative", "softmax_label", "logits_label")


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


def adversary_loss(params: dict, logits: jax.Array, batch: dict, kind: str) -> tuple[jax.Array, jax.Array]:
    """(mean softmax cross-entropy of the adversary's group prediction, its accuracy) on a batch."""
    features, label_code = adversary_features(logits, batch["y"], kind)
    group_logits = apply_adversary(params, features, label_code)
    groups = batch["group"].astype(jnp.int32)
    ce = mean_cross_entropy(group_logits, {"y": groups})
    return ce, jnp.mean(jnp.argmax(group_logits, -1) == groups)


def group_prior_accuracy(split, num_groups: int) -> float:
    """Accuracy of always predicting the most frequent group (the adversary's chance level)."""
    counts = np.bincount(np.asarray(split.group), minlength=num_groups)
    return float(counts.max() / max(1, counts.sum()))
