"""FairScratch's objective: cross-entropy + λ · a fairness surrogate (``ballot_jax.objectives``).

Which surrogate a dataset gets (``surrogate_for``: "auto" resolved per preset, the authors' relaxed
demographic-parity gap only on binary targets), the objective of each λ (``objective_maker``), and
the validation rule that picks λ from a grid (``selection_metric_for``, ``select_fairness_weight``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ballot_jax.engine.steps import Objective
from ballot_jax.objectives import (
    DP_RELAXATIONS,
    dp_relaxation_setup,
    fair_objective,
    relaxed_dp_objective,
    resolve_surrogate,
)

SELECTION_METRICS = (
    "auto", "mcd", "cwv", "demographic_parity_difference", "equal_opportunity_difference",
    "equalized_odds_difference",
)


BINARY_ONLY_METRICS = SELECTION_METRICS[3:]


def surrogate_for(surrogate: str, preset: str, num_classes: int) -> str:
    """The fairness term of option ``surrogate`` under ``preset`` on a dataset with ``num_classes``
    classes ("auto": the authors' "dp_logistic" on binary targets, else "loss_var"; ours
    ``objectives.resolve_surrogate``)."""
    kind = surrogate
    if kind == "auto" and preset == "authors":
        return "dp_logistic" if num_classes == 2 else "loss_var"
    if kind in DP_RELAXATIONS:
        if num_classes != 2:
            raise ValueError(f"surrogate {kind!r} needs binary targets, the dataset has {num_classes} classes")
        return kind
    return resolve_surrogate(kind, num_classes)


def objective_maker(kind: str, train, num_groups: int) -> tuple[Callable[[float], Objective], dict[str, Any]]:
    """(``objective_for(λ)``: CE + λ · surrogate ``kind``, what the record says of it). The relaxed
    DP gaps weigh groups by their priors in the ``train`` split and push up the groups whose positive
    rate is below the overall one (``objectives.dp_relaxation_setup``)."""
    if kind not in DP_RELAXATIONS:

        def objective_for(weight):
            return fair_objective(num_groups, kind, weight)

        return objective_for, {}
    priors, direction = dp_relaxation_setup(train.y, train.group, num_groups)

    def relaxed_for(weight):
        return relaxed_dp_objective(priors, direction, weight, kind)

    info = {"dp_group_priors": np.asarray(priors).tolist(), "dp_direction": np.asarray(direction).tolist()}
    return relaxed_for, info


def selection_metric_for(metric: str, num_classes: int) -> str:
    """The validation metric λ selection minimises ("auto": the DP difference on binary targets,
    else MCD)."""
    if metric == "auto":
        return "demographic_parity_difference" if num_classes == 2 else "mcd"
    if metric in BINARY_ONLY_METRICS and num_classes != 2:
        raise ValueError(f"selection_metric {metric!r} needs binary targets, the dataset has {num_classes} classes")
    return metric


def select_fairness_weight(rows: Sequence[tuple[float, float, float]], tolerance: float = 0.01) -> int:
    """Index of the chosen λ among ``rows`` of (λ, val accuracy, val unfairness).

    The reference is the row with the smallest λ (λ = 0 in the authors' grid); admissible rows have
    val accuracy ≥ reference accuracy − ``tolerance``; the choice is the admissible row with the
    lowest unfairness (NaN counts as +inf), ties to the smaller λ, then the earlier row. The
    reference itself is always admissible.
    """
    rows = [(float(w), float(a), float(u)) for w, a, u in rows]
    if not rows:
        raise ValueError("no λ to select from")
    ref = min(range(len(rows)), key=lambda i: (rows[i][0], i))
    floor = rows[ref][1] - tolerance - 1e-12
    admissible = [i for i, (_, acc, _) in enumerate(rows) if acc >= floor]

    def unfairness(i):
        u = rows[i][2]
        return math.inf if math.isnan(u) else u

    return min(admissible, key=lambda i: (unfairness(i), rows[i][0], i))

