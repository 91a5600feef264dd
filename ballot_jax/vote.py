"""Ballot's vote across training (the authors' selection mechanism), as pure functions on pytrees.

The authors' public code (github Antimony5292/Ballot @ 2820b51) selects the ticket by a vote. At E
points of a training run it takes two gradients of the weights accumulated over training data:
the accuracy gradient g (plain cross-entropy) and the fairness gradient gᶠ (cross-entropy with
example weights 1/a_g, a_g the validation accuracy of the example's group; their code casts a_g to
an integer first, a bug: the intent is 1/a_g). Each point e then casts one vote for each of the k
entries with the largest

    s_e = ĝ + η · ĝᶠ        ĝ: the gradient L2-normalised per input column (over the output axis)

(``kind="authors"``, literal: the signed sum; entries where s_e = 0 get no vote), and the ticket
keeps the k entries with the most votes. Ours, beside it (docs/method.md §5.5):

- ``kind="saliency"``: s_e = n(|w·g|) + η · n(|w·gᶠ|) with n the same column normalisation. The
  signed gradient ranks weights by which way the loss would like them to move, not by what removing
  them costs; |w·g| is the first-order estimate of the loss change when w is set to 0.
- any other per-point keep score (e.g. Ballot's conflict score) through :func:`cast_votes`.

Ties in the vote count are broken by |w| (then by position), deterministically. Everything here is
jit-able; counts (k) may be traced.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ballot_jax.masks import Mask, is_unprunable
from ballot_jax.pruning import keep_top_k_global, magnitude_scores

PyTree = Any
VOTE_KINDS = ("authors", "saliency", "conflict")


def _map(fn, mask: Mask, *trees: PyTree) -> PyTree:
    return jax.tree.map(lambda m, *xs: None if m is None else fn(m, *xs), mask, *trees, is_leaf=is_unprunable)


def normalize_columns(x: jax.Array, eps: float = 1e-12, output_axis: int = -1) -> jax.Array:
    """``x`` divided by its L2 norm over the output axis, per input column; 1-D: whole vector.

    Flax kernels are [in, out] (conv [..., in, out]): ``output_axis=-1``, the axis that
    ``torch.nn.functional.normalize(weight_grad, dim=0)`` normalises over for a PyTorch [out, in]
    weight. Equinox and PyTorch layouts are [out, in, ...]: pass ``output_axis=0``. ``eps`` bounds
    the norm from below, as there.
    """
    axis = -1 if x.ndim < 2 else output_axis
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
    return x / jnp.maximum(norm, eps)


def group_weights(group_accuracy: jax.Array, present: jax.Array | None = None) -> jax.Array:
    """The fairness gradient's per-group example weights 1 / (a_g + 1e-6) ([G]).

    The authors' intent (their code casts a_g to an integer first). Groups absent from the
    validation split (``present`` False) get weight 1.
    """
    w = 1.0 / (jnp.asarray(group_accuracy, jnp.float32) + 1e-6)
    return w if present is None else jnp.where(present, w, 1.0)


def vote_scores(
    params: PyTree, mask: Mask, grads: PyTree, fair_grads: PyTree, eta: float = 1.0, kind: str = "authors",
    output_axis: int = -1,
) -> PyTree:
    """s_e for every prunable weight (mask structure): see the module docstring for ``kind``.
    ``output_axis``: the kernels' output axis (-1 for Flax, 0 for Equinox/PyTorch layouts)."""
    n = lambda x: normalize_columns(x, output_axis=output_axis)  # noqa: E731
    if kind == "authors":
        return _map(lambda m, g, f: n(g) + eta * n(f), mask, grads, fair_grads)
    if kind == "saliency":
        return _map(lambda m, w, g, f: n(jnp.abs(w * g)) + eta * n(jnp.abs(w * f)), mask, params, grads, fair_grads)
    raise ValueError(f"vote kind must be 'authors' or 'saliency' here, got {kind!r}")


def cast_votes(scores: PyTree, mask: Mask, num_keep: jax.Array | int) -> Mask:
    """One point's ballot: True for the ``num_keep`` alive entries with the largest non-zero score.

    Alive = ``mask`` True; an entry scoring exactly 0 gets no vote (as in the authors' code).
    """
    eligible = _map(lambda m, s: m & (s != 0), mask, scores)
    return keep_top_k_global(scores, eligible, jnp.asarray(num_keep, jnp.int32))


def add_votes(counts: PyTree | None, ballot: Mask) -> PyTree:
    """Running int32 vote counts (mask structure) plus one ballot; ``counts=None`` starts at 0."""
    if counts is None:
        return _map(lambda b: b.astype(jnp.int32), ballot)
    return _map(lambda b, c: c + b.astype(jnp.int32), ballot, counts)


@jax.jit
def keep_most_voted(counts: PyTree, params: PyTree, mask: Mask, num_keep: jax.Array) -> Mask:
    """Keep the ``num_keep`` alive entries with the most votes; ties by larger |w|, then position.

    Exact lexicographic ranking (no score mixing): alive first, votes descending, |w| descending,
    flattened position ascending. Never revives a pruned entry.
    """
    return keep_top_k_global(counts, mask, num_keep, magnitude_scores(params, mask))
