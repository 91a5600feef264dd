"""SafeCompress's options: the two presets' defaults, the checks of a configuration, and the plan of
a run (budget, ERK counts, mask-update steps, probe or pre-training steps). The method itself,
``SafeCompress`` (safecompress.py), is these options with a ``run``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ballot_jax.engine.loop import Task, TrainConfig, dense_mask
from ballot_jax.methods.adversary import ADVERSARY_INPUTS
from ballot_jax.methods.base import budget_steps, level_keep_counts
from ballot_jax.drop_grow import update_schedule
from ballot_jax.layer_budgets import erk_keep_counts

PRESETS = ("authors", "ours")
CANDIDATE_KINDS = ("gradient", "random", "keep")
GROWTH_KINDS = ("random", "gradient")
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


@dataclasses.dataclass(frozen=True)
class SafeCompressOptions:
    """SafeCompress's options, their checks and the plan of a run (``SafeCompress`` runs it).

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

    def run_schedule(self, task: Task, config: TrainConfig, sparsity: float) -> dict[str, Any]:
        """Budget, the phase config, the ERK counts, the update steps and (authors) the pre-training
        steps of a run."""
        problems = self.validate(task.data.info)
        if problems:
            raise ValueError("; ".join(problems))
        mask = dense_mask(task)
        levels = len(level_keep_counts(mask, sparsity, self.fraction))
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
