"""Pruning as an optax transformation: ``sparsity_updater(inner, schedule, scorer)``.

The updater wraps any optax transformation ``inner``. Its state (``SparsityState``: the mask, the
step count, the number of mask updates done, the schedule as arrays) sits in the optimizer state, so
``optax.tree_utils.tree_get(opt_state, "SparsityState")`` finds it inside any chain, and a jitted
train step reads the mask as data (a new mask never recompiles). Each ``update`` call:

1. if mask update i is due (``count >= schedule step i``) and the call carries the scorer's inputs
   (``scorer.requires``, passed as keyword arguments of ``update``, e.g. ``group_grads=``), keeps the
   ``keep_counts[i]`` alive weights the scorer ranks highest (exact count, never reviving; a
   ``lax.cond`` inside jit). Without those inputs (absent or ``None``: a separately compiled
   variant of the step) the update waits for the next call that has them;
2. zeroes the inner optimizer's moments (momentum, Adam's ``mu``/``nu``, ...) at pruned entries,
   when the mask changed since it last did (a pruning step, :func:`set_mask`, :func:`rewind`);
3. masks the gradient before ``inner`` (so moments of pruned weights stay exactly 0) and
4. returns updates that are ``inner``'s at kept entries and ``-w`` at pruned ones, so
   ``optax.apply_updates`` leaves every pruned weight at exactly 0 (newly pruned ones included).

LTH-style rewinding (weights, optimizer state and step count, hence the learning-rate schedule,
back to a snapshot; the current mask and level kept) is :func:`rewind`. Everything is jit-able.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ballot_jax import scorers as scorers_lib
from ballot_jax.masks import Mask, apply_mask, default_prunable, is_unprunable, make_mask, num_prunable
from ballot_jax.pruning import keep_top_k_global, num_keep_for_sparsity, rounds_to_reach

PyTree = Any


@dataclasses.dataclass(frozen=True)
class PruningSchedule:
    """When the mask changes, and how many weights each change keeps.

    ``steps[i]``: the step count from which mask update i is due (non-decreasing; equal steps after
    a :func:`rewind` to an earlier count give LTH's rounds). Each update keeps either exactly
    ``N - round(sparsities[i] * N)`` of the ``N`` prunable weights, or, with ``fraction``, removes
    ``round(fraction * alive)`` of the alive ones (the counting rule of ``ballot_jax.prune``), never
    going below ``N - round(target * N)`` kept when ``target`` is given.
    """

    steps: tuple[int, ...]
    sparsities: tuple[float, ...] | None = None
    fraction: float | None = None
    target: float | None = None

    def __post_init__(self):
        steps = tuple(int(s) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        if any(s < 0 for s in steps) or any(b < a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"PruningSchedule.steps must be non-decreasing counts >= 0, got {steps}")
        if (self.sparsities is None) == (self.fraction is None):
            raise ValueError("PruningSchedule needs exactly one of sparsities= (targets) or fraction= (per update)")
        if self.sparsities is not None:
            sparsities = tuple(float(s) for s in self.sparsities)
            object.__setattr__(self, "sparsities", sparsities)
            if len(sparsities) != len(steps):
                raise ValueError(f"PruningSchedule: {len(steps)} steps but {len(sparsities)} sparsities")
            if any(not 0.0 <= s < 1.0 for s in sparsities) or any(b < a for a, b in zip(sparsities, sparsities[1:])):
                raise ValueError(f"PruningSchedule.sparsities must be non-decreasing in [0, 1), got {sparsities}")
        elif not 0.0 < float(self.fraction) < 1.0:
            raise ValueError(f"PruningSchedule.fraction must be in (0, 1), got {self.fraction!r}")
        if self.target is not None and (self.fraction is None or not 0.0 <= float(self.target) < 1.0):
            raise ValueError(f"PruningSchedule.target (a sparsity in [0, 1)) goes with fraction=, got {self.target!r}")

    def keep_counts(self, num_prunable_weights: int) -> list[int]:
        """The exact kept count after each update, for ``num_prunable_weights`` prunable weights."""
        if self.sparsities is not None:
            return [num_keep_for_sparsity(num_prunable_weights, s) for s in self.sparsities]
        floor = 0 if self.target is None else num_keep_for_sparsity(num_prunable_weights, self.target)
        counts, alive = [], num_prunable_weights
        for _ in self.steps:
            alive = max(floor, alive - round(self.fraction * alive))
            counts.append(alive)
        return counts


def one_shot(sparsity: float, step: int) -> PruningSchedule:
    """Prune once, to ``sparsity``, at ``step``."""
    return PruningSchedule((step,), sparsities=(sparsity,))


def gradual(sparsity: float, start: int, end: int, num_updates: int, power: float = 3.0) -> PruningSchedule:
    """Gradual pruning (Zhu & Gupta, 2017): ``num_updates`` evenly spaced updates from ``start`` to
    ``end``, update i to sparsity ``sparsity · (1 − (1 − i/(n−1))^power)`` (``sparsity`` at ``end``)."""
    if num_updates < 1 or end < start:
        raise ValueError(f"gradual needs num_updates >= 1 and end >= start, got {num_updates}, {start}, {end}")
    if num_updates == 1:
        return one_shot(sparsity, end)
    fractions = [i / (num_updates - 1) for i in range(num_updates)]
    steps = tuple(start + round(f * (end - start)) for f in fractions)
    return PruningSchedule(steps, sparsities=tuple(sparsity * (1.0 - (1.0 - f) ** power) for f in fractions))


def lth_rounds(sparsity: float, fraction: float, step: int) -> PruningSchedule:
    """Iterative pruning with rewinding (LTH): every round ends at ``step``, removes ``fraction`` of
    the alive weights (the last round only down to exactly ``sparsity``) and is followed by a
    :func:`rewind`; ``ballot_jax.rounds_to_reach(sparsity, fraction)`` rounds."""
    rounds = max(1, rounds_to_reach(sparsity, fraction))
    return PruningSchedule((step,) * rounds, fraction=fraction, target=sparsity)


class SparsityState(NamedTuple):
    """The updater's state (found in any chain by ``optax.tree_utils.tree_get(state, "SparsityState")``)."""

    mask: Mask
    count: jax.Array  # int32: update calls so far (the step count)
    level: jax.Array  # int32: mask updates done
    due_steps: jax.Array  # int32 [L]: schedule steps
    keep_counts: jax.Array  # int32 [L]: kept count after each update
    moments_stale: jax.Array  # bool: the mask changed since the inner moments were last zeroed
    inner_state: optax.OptState


Scorer = Callable[..., Any]


def _select(scores: Any, mask: Mask, num_keep: jax.Array) -> Mask:
    if isinstance(scores, scorers_lib.Ranked):
        return keep_top_k_global(scores.primary, mask, num_keep, scores.tiebreak)
    return keep_top_k_global(scores, mask, num_keep)


def _kept_entries(params: PyTree, mask: Mask) -> PyTree:
    """The mask as a params-structured tree (``True`` everywhere in an unprunable leaf; ``None``
    where the params have no array, e.g. an Equinox module's activation function)."""
    return jax.tree.map(
        lambda m, p: m if m is not None or p is None else jnp.ones(jnp.shape(p), bool), mask, params,
        is_leaf=is_unprunable,
    )


def zero_pruned_moments(tx: optax.GradientTransformation, opt_state: PyTree, params: PyTree, mask: Mask) -> PyTree:
    """``opt_state`` of ``tx`` with every params-shaped buffer (momentum, ``mu``, ``nu``, ...) set to
    exactly 0 at the entries ``mask`` prunes (``optax.tree_utils.tree_map_params``). Jit-able."""
    keep = _kept_entries(params, mask)
    return optax.tree_utils.tree_map_params(
        tx, lambda x, k: jnp.where(k, x, jnp.zeros_like(x)), opt_state, keep,
        transform_non_params=lambda x: x,
    )


def sparsity_updater(
    inner: optax.GradientTransformation,
    schedule: PruningSchedule,
    scorer: Scorer = scorers_lib.Magnitude(),
    *,
    prunable: Callable[[tuple, Any], bool] = default_prunable,
    key: jax.Array | None = None,
) -> optax.GradientTransformationExtraArgs:
    """``inner`` with scheduled pruning (see the module docstring). ``scorer``: a
    ``ballot_jax.scorers`` scorer; ``prunable``: which leaves can be pruned (``make_mask``'s filter);
    ``key``: randomness for random scorers (mask update i uses ``fold_in(key, i)``)."""
    inner = optax.with_extra_args_support(inner)
    key = jax.random.key(0) if key is None else key
    requires = tuple(getattr(scorer, "requires", ()))

    def init_fn(params):
        mask = make_mask(params, prunable)
        counts = schedule.keep_counts(num_prunable(mask))
        return SparsityState(
            mask, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
            jnp.asarray(schedule.steps, jnp.int32).reshape(-1), jnp.asarray(counts, jnp.int32).reshape(-1),
            jnp.zeros((), bool), inner.init(params),
        )

    def update_fn(updates, state: SparsityState, params=None, **extra_args):
        if params is None:
            raise ValueError("sparsity_updater needs the params: call tx.update(grads, opt_state, params)")
        mask, level, stale = state.mask, state.level, state.moments_stale
        num_updates = len(schedule.steps)
        if num_updates and all(extra_args.get(name) is not None for name in requires):
            i = jnp.minimum(level, num_updates - 1)
            due = (level < num_updates) & (state.count >= state.due_steps[i])
            inputs = {name: extra_args[name] for name in requires}

            def prune():
                scores = scorer(params, mask, grads=updates, key=jax.random.fold_in(key, level), **inputs)
                return _select(scores, mask, state.keep_counts[i])

            mask = jax.lax.cond(due, prune, lambda: mask)
            level = level + due.astype(jnp.int32)
            stale = stale | due
        inner_state = jax.lax.cond(
            stale, lambda s: zero_pruned_moments(inner, s, params, mask), lambda s: s, state.inner_state
        )
        new_updates, inner_state = inner.update(apply_mask(updates, mask), inner_state, params, **extra_args)
        new_updates = jax.tree.map(
            lambda m, u, p: u if m is None else jnp.where(m, u, -p), mask, new_updates, params, is_leaf=is_unprunable
        )
        new_state = SparsityState(
            mask, state.count + 1, level, state.due_steps, state.keep_counts, jnp.zeros((), bool), inner_state
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sparsity_state(opt_state: PyTree) -> SparsityState:
    """The ``SparsityState`` inside ``opt_state`` (any chain); ``ValueError`` if there is none."""
    found = optax.tree_utils.tree_get(opt_state, "SparsityState")
    if found is None:
        raise ValueError("no SparsityState in this optimizer state: build the optimizer with sparsity_updater")
    return found


def get_mask(opt_state: PyTree) -> Mask:
    """The current mask of the ``sparsity_updater`` inside ``opt_state``."""
    return sparsity_state(opt_state).mask


def set_mask(opt_state: PyTree, mask: Mask) -> PyTree:
    """``opt_state`` with a new mask (moments at its pruned entries are zeroed at the next update).
    Zero the params once yourself (``apply_mask``), or let the next update do it."""
    state = sparsity_state(opt_state)
    new = state._replace(mask=mask, moments_stale=jnp.ones((), bool))
    return optax.tree_utils.tree_set(opt_state, SparsityState=new)


def rewind(opt_state: PyTree, snapshot_params: PyTree, snapshot_opt_state: PyTree) -> tuple[PyTree, PyTree]:
    """LTH rewinding: ``(params, opt_state)`` back to a snapshot (θ_k and its optimizer state, saved
    at step k), keeping the current mask and number of mask updates. The step count, the inner
    optimizer's state and so the learning-rate schedule's position are the snapshot's; pruned
    weights are 0 and their moments are zeroed at the next update. Jit-able."""
    now = sparsity_state(opt_state)
    snap = sparsity_state(snapshot_opt_state)
    new = snap._replace(mask=now.mask, level=now.level, moments_stale=jnp.ones((), bool))
    return apply_mask(snapshot_params, now.mask), optax.tree_utils.tree_set(snapshot_opt_state, SparsityState=new)


__all__ = [
    "PruningSchedule",
    "SparsityState",
    "get_mask",
    "gradual",
    "lth_rounds",
    "one_shot",
    "rewind",
    "set_mask",
    "sparsity_state",
    "sparsity_updater",
    "zero_pruned_moments",
]
