"""Training objectives with differentiable group-disparity surrogates (jit-able, Flax-free).

An objective is ``objective(logits, batch) -> scalar`` as the engine's train step takes it; ``batch``
holds integer ``y`` and ``group`` ids. Under data parallelism the engine evaluates it on the global
batch (logits gathered from every device), so its value does not depend on the device count.
A ``StatefulObjective`` (``init``, ``apply``) also carries a state from step to step of a phase.
"""

from __future__ import annotations

import functools

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

SURROGATES = ("auto", "dp", "eo", "loss_var", "worst_cell", "worst_group")
SOFT_WORST = ("worst_cell", "worst_group")  # the soft worst unit: the surrogates a running estimate applies to


# ------------------------------------------------------------------------------------------------
# Fairness surrogate


def _present_range(values: jax.Array, present: jax.Array) -> jax.Array:
    """max − min of ``values`` over ``present`` entries; 0 with fewer than two present."""
    hi = jnp.max(jnp.where(present, values, -jnp.inf))
    lo = jnp.min(jnp.where(present, values, jnp.inf))
    return jnp.where(jnp.sum(present) >= 2, hi - lo, 0.0)


def _group_means(values: jax.Array, groups: jax.Array, weights: jax.Array, num_groups: int):
    total = jax.ops.segment_sum(values * weights, groups, num_segments=num_groups)
    count = jax.ops.segment_sum(weights, groups, num_segments=num_groups)
    return total / jnp.maximum(count, 1e-12), count > 0


def group_balanced_mean(values: jax.Array, groups: jax.Array, num_groups: int) -> jax.Array:
    """The mean over the groups present of each group's mean of ``values`` [B]: every group in the
    batch weighs the same, however few examples it has (the example mean when all are equally many)."""
    mean, present = _group_means(values, groups, jnp.ones_like(values), num_groups)
    return jnp.sum(jnp.where(present, mean, 0.0)) / jnp.maximum(jnp.sum(present), 1)


def _soft_worst(ce: jax.Array, units: jax.Array, num_units: int, temperature: float) -> jax.Array:
    """Σ_u q_u L_u − mean(ce): L_u the mean of ``ce`` over unit u, q = softmax(L / τ) over the units
    present, no gradient through q (the soft worst unit, a group-DRO-like reweighting)."""
    mean, present = _group_means(ce, units, jnp.ones_like(ce), num_units)
    return _weighted_by(mean, present, mean, temperature) - jnp.mean(ce)


def _weighted_by(mean: jax.Array, present: jax.Array, level: jax.Array, temperature: float) -> jax.Array:
    """Σ_u q_u mean_u over the units present, q = softmax(level / τ) over them (no gradient through q)."""
    q = jax.nn.softmax(jnp.where(present, jax.lax.stop_gradient(level) / temperature, -jnp.inf))
    return jnp.sum(jnp.where(present, q * mean, 0.0))


def _units(batch: dict, num_classes: int, kind: str) -> jax.Array:
    """The unit of each example: its (group, label) cell g · C + y ("worst_cell") or its group."""
    groups = batch["group"].astype(jnp.int32)
    return groups * num_classes + batch["y"].astype(jnp.int32) if kind == "worst_cell" else groups


class StatefulObjective(NamedTuple):
    """An objective that carries a state across the steps of a training phase (e.g. a running
    estimate of the cells' losses). ``init() -> carry`` is the state at the start of a phase;
    ``apply(logits, batch, carry) -> (loss, next carry)`` is evaluated like a plain objective (on
    the global batch) and its next carry must not depend on the gradient (the engine takes none
    through it). The engine's ``Trainer`` checkpoints the carry with the train state, so a phase
    resumes bit-identically, and starts every phase from ``init()``."""

    init: Callable[[], Any]
    apply: Callable[[jax.Array, dict, Any], tuple[jax.Array, Any]]


def running_cell_losses(
    estimate: tuple[jax.Array, jax.Array], mean: jax.Array, present: jax.Array, decay: float
) -> tuple[jax.Array, jax.Array]:
    """One update of a running (exponential, bias-corrected) estimate of each unit's loss.

    ``estimate`` = (m, n): m_u ← (1 − γ) m_u + γ L_u and n_u ← (1 − γ) n_u + γ for the units present
    in the batch (``present``, ``mean`` = L their batch means), unchanged for the others; the estimate
    of unit u is m_u / n_u (n_u = 0: never seen). γ = ``decay`` in (0, 1]; γ = 1 keeps only the last
    batch's mean of each unit.
    """
    m, n = estimate
    mean = jax.lax.stop_gradient(mean)
    m = jnp.where(present, (1.0 - decay) * m + decay * mean, m)
    n = jnp.where(present, (1.0 - decay) * n + decay, n)
    return m, n


def _soft_worst_running(ce, units, num_units, temperature, estimate, decay):
    """``_soft_worst`` with q = softmax(estimate / τ) over the units present, the estimate updated
    with this batch first (``running_cell_losses``): (penalty, next estimate)."""
    mean, present = _group_means(ce, units, jnp.ones_like(ce), num_units)
    m, n = running_cell_losses(estimate, mean, present, decay)
    return _weighted_by(mean, present, m / jnp.where(n > 0, n, 1.0), temperature) - jnp.mean(ce), (m, n)


def fairness_surrogate(
    logits: jax.Array, batch: dict, num_groups: int, kind: str, temperature: float = 0.5
) -> jax.Array:
    """Differentiable group-disparity penalty of one batch (groups absent from it are ignored).

    "dp": max − min over groups of mean P(y=1 | x) (binary logits [B, 2]); "eo": the same among
    examples with y = 1; "loss_var": population variance over groups of the mean cross-entropy;
    "worst_cell": Σ_c q_c L_c − mean cross-entropy, where L_c is the mean cross-entropy of the
    (group, label) cell c = group · C + y (C = ``logits.shape[-1]``) and q = softmax(L / τ) over the
    cells present, with τ = ``temperature`` and no gradient through q. Its gradient only ever adds
    weight to the high-loss cells (a soft worst-cell, group-DRO-like reweighting); unlike a variance
    of losses it cannot be lowered by making the easy cells worse. "worst_group": the same over the
    groups instead of the (group, label) cells (equal to "worst_cell" when the groups are the
    classes): it reweights the group with the higher loss as a whole, i.e. aims at the groups'
    accuracy gap rather than at their error rates within each class.
    """
    groups = batch["group"].astype(jnp.int32)
    if kind in ("dp", "eo"):
        if logits.shape[-1] != 2:
            raise ValueError(f"surrogate {kind!r} needs binary targets (2 logits), got {logits.shape[-1]}")
        p1 = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[:, 1]
        weights = jnp.ones_like(p1) if kind == "dp" else (batch["y"] == 1).astype(jnp.float32)
        mean, present = _group_means(p1, groups, weights, num_groups)
        return _present_range(mean, present)
    if kind == "loss_var":
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["y"])
        mean, present = _group_means(ce, groups, jnp.ones_like(ce), num_groups)
        k = jnp.maximum(jnp.sum(present), 1)
        centre = jnp.sum(jnp.where(present, mean, 0.0)) / k
        return jnp.sum(jnp.where(present, (mean - centre) ** 2, 0.0)) / k
    if kind in SOFT_WORST:
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["y"])
        num_classes = logits.shape[-1]
        num_units = num_groups * num_classes if kind == "worst_cell" else num_groups
        return _soft_worst(ce, _units(batch, num_classes, kind), num_units, temperature)
    raise ValueError(f"unknown surrogate {kind!r}; expected one of {SURROGATES[1:]}")


def resolve_surrogate(kind: str, num_classes: int) -> str:
    """"auto" -> "dp" for binary targets, "loss_var" otherwise; checks the others."""
    if kind not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")
    if kind == "auto":
        return "dp" if num_classes == 2 else "loss_var"
    if kind in ("dp", "eo") and num_classes != 2:
        raise ValueError(f"surrogate {kind!r} needs binary targets, the dataset has {num_classes} classes")
    return kind


@functools.lru_cache(maxsize=64)
def fair_objective(
    num_groups: int, kind: str, weight: float, temperature: float = 0.5
) -> Callable[[jax.Array, dict], jax.Array]:
    """The engine ``objective``: mean cross-entropy + ``weight`` · ``fairness_surrogate``.

    Memoised: equal arguments give the same function, so the engine reuses its compiled step."""
    def penalty(logits, batch):
        return fairness_surrogate(logits, batch, num_groups, kind, temperature)

    return cross_entropy_plus(penalty, weight)


@functools.lru_cache(maxsize=64)
def running_fair_objective(
    num_groups: int, num_classes: int, kind: str, weight: float, temperature: float, decay: float
) -> StatefulObjective:
    """CE + ``weight`` · the soft worst cell (``kind`` "worst_cell") or group ("worst_group") whose
    weights q come from a running estimate of the units' losses across the phase's batches
    (``running_cell_losses`` with γ = ``decay``) instead of this batch's means alone: a
    ``StatefulObjective`` whose carry is the estimate (m, n), zero at the start of a phase.

    The gradient still flows through this batch's unit means only; the estimate sets how much
    weight each present unit gets (group DRO's idea of weights that persist across batches, with
    its exponentiated-gradient update replaced by the same softmax(L / τ) as the per-batch term).
    With ``decay`` = 1 it equals ``fair_objective(num_groups, kind, weight, temperature)`` in value
    and gradient (to float rounding).
    Memoised, so the engine reuses its compiled step."""
    if kind not in SOFT_WORST:
        raise ValueError(f"a running estimate needs disparity 'worst_cell' or 'worst_group', got {kind!r}")
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"the running estimate's decay must be in (0, 1], got {decay}")
    num_units = num_groups * num_classes if kind == "worst_cell" else num_groups

    def init():
        return jnp.zeros((num_units,), jnp.float32), jnp.zeros((num_units,), jnp.float32)

    def apply(logits, batch, carry):
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["y"])
        penalty, carry = _soft_worst_running(ce, _units(batch, num_classes, kind), num_units, temperature, carry, decay)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss + weight * penalty, carry

    return StatefulObjective(init, apply)


def cross_entropy_plus(
    penalty: Callable[[jax.Array, dict], jax.Array], weight: float
) -> Callable[[jax.Array, dict], jax.Array]:
    """``objective(logits, batch)`` = mean cross-entropy + ``weight`` · ``penalty(logits, batch)``;
    exactly the cross-entropy when ``weight`` is 0 (the penalty is then not computed)."""

    def objective(logits, batch):
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        if weight == 0.0:
            return ce
        return ce + weight * penalty(logits, batch)

    return objective


# ------------------------------------------------------------------------------------------------
# Relaxed signed demographic-parity gap (FairScratch as its authors run it: Tang et al., CVPR 2023)

DP_RELAXATIONS = ("dp_logistic", "dp_linear", "dp_hinge")


def dp_relaxation_setup(y, group, num_groups: int) -> tuple[jax.Array, jax.Array]:
    """Group priors π_g and directions s_g of ``dp_relaxation``, from a (training) split's labels.

    π_g = n_g / n. s_g = +1 when group g's positive rate n_{g,1}/n_g is below the split's n_1/n
    (its predicted-positive rate is pushed up), −1 when above (pushed down), 0 when equal or when
    the group is absent (no term). Compared on integer counts, so ties are exact. Host-side.
    """
    y = np.asarray(y).astype(np.int64).reshape(-1)
    group = np.asarray(group).astype(np.int64).reshape(-1)
    if y.shape != group.shape:
        raise ValueError(f"y and group differ in shape: {y.shape} vs {group.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("the relaxed demographic-parity penalty needs binary labels (0/1)")
    if group.size and (group.min() < 0 or group.max() >= num_groups):
        raise ValueError(f"group ids must be in [0, {num_groups})")
    n_g = np.bincount(group, minlength=num_groups)
    pos_g = np.bincount(group[y == 1], minlength=num_groups)
    n, pos = int(n_g.sum()), int(pos_g.sum())
    # rate_g < rate  <=>  pos_g · n < pos · n_g
    direction = np.sign(pos * n_g - pos_g * n)
    direction = np.where(n_g > 0, direction, 0)
    priors = n_g / max(n, 1)
    return jnp.asarray(priors, jnp.float32), jnp.asarray(direction, jnp.float32)


def _relaxation(t: jax.Array, kind: str) -> jax.Array:
    """φ(t), a surrogate of 1[t < 0]: logistic −log σ(t), linear −t, hinge max(0, 1 − t)."""
    if kind == "dp_logistic":
        return jax.nn.softplus(-t)
    if kind == "dp_linear":
        return -t
    if kind == "dp_hinge":
        return jnp.maximum(0.0, 1.0 - t)
    raise ValueError(f"unknown relaxation {kind!r}; expected one of {DP_RELAXATIONS}")


def dp_relaxation(
    logits: jax.Array, batch: dict, priors: jax.Array, direction: jax.Array, kind: str = "dp_logistic"
) -> jax.Array:
    """(1/B) Σ_i |s_{g_i}| · φ(s_{g_i} · f_i) / π_{g_i}: the authors' relaxed signed DP gap.

    f_i = logit_1 − logit_0 (the log-odds of y = 1; binary logits [B, 2]), B the batch size, π and
    s from ``dp_relaxation_setup`` on the training split, φ = ``_relaxation(kind)``. With two groups
    it is ≈ 1 − (P(ŷ=1 | up) − P(ŷ=1 | down)) relaxed: minimising it raises the predicted-positive
    rate of the group with the lower training positive rate and lowers the other's. Groups absent
    from the batch contribute nothing.
    """
    if logits.shape[-1] != 2:
        raise ValueError(f"{kind!r} needs binary targets (2 logits), got {logits.shape[-1]}")
    _relaxation(jnp.zeros(()), kind)  # checks kind
    logits = logits.astype(jnp.float32)
    f = logits[:, 1] - logits[:, 0]
    groups = batch["group"].astype(jnp.int32)
    s = jnp.asarray(direction, jnp.float32)[groups]
    prior = jnp.asarray(priors, jnp.float32)[groups]
    active = s != 0
    term = _relaxation(s * f, kind) / jnp.where(active, prior, 1.0)
    return jnp.sum(jnp.where(active, term, 0.0)) / f.shape[0]


def relaxed_dp_objective(
    priors: jax.Array, direction: jax.Array, weight: float, kind: str = "dp_logistic"
) -> Callable[[jax.Array, dict], jax.Array]:
    """The engine ``objective``: mean cross-entropy + ``weight`` · ``dp_relaxation``."""
    _relaxation(jnp.zeros(()), kind)
    return cross_entropy_plus(lambda logits, batch: dp_relaxation(logits, batch, priors, direction, kind), weight)
