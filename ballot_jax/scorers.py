"""Keep scores for the sparsity updater (``ballot_jax.sparsity``): which weights a mask update keeps.

A scorer is called inside the jitted optimizer update as

    scorer(params, mask, *, grads, key, **inputs) -> scores | Ranked

``grads`` are the raw gradients of this step, ``key`` a PRNG key for this mask update, ``inputs``
the extra arguments the scorer names in its ``requires`` (passed to the optimizer's ``update``,
e.g. ``group_grads=`` for Ballot's conflict score); scores have the mask's structure (``None`` at
unprunable leaves), higher = keep. A ``Ranked`` result ranks by ``primary`` and breaks its ties by
``tiebreak`` (exact lexicographic order, as the vote needs). Every scorer is jit-able.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ballot_jax import ballot
from ballot_jax.masks import Mask, is_unprunable
from ballot_jax.pruning import magnitude_scores, uniform_scores

PyTree = Any


class Ranked(NamedTuple):
    """Scores ranked by ``primary``, ties broken by ``tiebreak`` (both in the mask's structure)."""

    primary: PyTree
    tiebreak: PyTree


def _map(fn, mask: Mask, *trees: PyTree) -> PyTree:
    return jax.tree.map(lambda m, *xs: None if m is None else fn(*xs), mask, *trees, is_leaf=is_unprunable)


@dataclasses.dataclass(frozen=True)
class Magnitude:
    """|w|: magnitude pruning (the LTH baseline's score)."""

    requires: tuple[str, ...] = ()

    def __call__(self, params, mask, *, grads=None, key=None, **inputs):
        return magnitude_scores(params, mask)


@dataclasses.dataclass(frozen=True)
class Random:
    """U(0, 1) scores from the update's key: random pruning (a sanity baseline)."""

    requires: tuple[str, ...] = ()

    def __call__(self, params, mask, *, grads=None, key=None, **inputs):
        return uniform_scores(key, mask)


@dataclasses.dataclass(frozen=True)
class Saliency:
    """|w · g| with this step's gradient g: the first-order loss change of removing w (SNIP-style)."""

    requires: tuple[str, ...] = ()

    def __call__(self, params, mask, *, grads=None, key=None, **inputs):
        return _map(lambda w, g: jnp.abs(w * g), mask, params, grads)


@dataclasses.dataclass(frozen=True)
class Conflict:
    """Ballot's conflict-detection score (``ballot_jax.ballot``) from per-group statistics, passed to
    the optimizer's ``update`` as ``group_grads=`` (a ``GroupGrads``, e.g. from ``mean_group_grads``)."""

    config: ballot.BallotConfig = ballot.BallotConfig()
    requires: tuple[str, ...] = ("group_grads",)

    def __call__(self, params, mask, *, grads=None, key=None, group_grads=None, **inputs):
        stats = ballot.conflict_stats(params, mask, group_grads)
        return ballot.scores(params, mask, stats, self.config)


@dataclasses.dataclass(frozen=True)
class Votes:
    """The authors' vote: keep the most-voted weights, ties by larger |w| (``ballot_jax.vote``).
    The running counts are passed as ``votes=`` (``vote.add_votes`` over the training points)."""

    requires: tuple[str, ...] = ("votes",)

    def __call__(self, params, mask, *, grads=None, key=None, votes=None, **inputs):
        counts = _map(lambda v: v.astype(jnp.float32), mask, votes)
        return Ranked(counts, magnitude_scores(params, mask))


@dataclasses.dataclass(frozen=True)
class Given:
    """Scores computed elsewhere and passed as ``<name>=`` (e.g. FairScratch's edge-popup scores)."""

    name: str = "scores"

    @property
    def requires(self) -> tuple[str, ...]:
        return (self.name,)

    def __call__(self, params, mask, *, grads=None, key=None, **inputs):
        return inputs[self.name]


__all__ = ["Conflict", "Given", "Magnitude", "Random", "Ranked", "Saliency", "Votes"]
