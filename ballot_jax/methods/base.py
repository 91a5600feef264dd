"""The one interface every pruning method implements, and the record it returns.

A method is an object with a ``name`` and ``run(task, config, sparsity, workdir) -> record``. Every
method gets the same task (model, data, mesh), the same phase config and the same budget:
``budget_steps(config, sparsity, fraction)`` optimizer steps in total, the budget of iterative
pruning at that sparsity (dense training plus one retraining per level). The record is a JSON-ready
dict; ``finish_record`` builds it so all methods report the same fields.
"""

from __future__ import annotations

import pathlib
from typing import Any, Protocol

from ballot_jax.engine.loop import Task, TrainConfig
from ballot_jax.masks import num_prunable
from ballot_jax.pruning import pruning_plan

Record = dict[str, Any]


class Method(Protocol):
    """A pruning strategy: ``run`` trains and prunes to exactly ``sparsity`` and reports a record.

    Options are checked when the method is built (``__post_init__`` raises ``ValueError``). A method
    whose options also depend on the dataset (e.g. a metric only defined for binary targets) has a
    ``validate(info) -> list[str]`` that returns those problems for a ``DatasetInfo``, each starting
    with the option's name (see :func:`dataset_problems`), so a driver can report all of them before
    any training.
    """

    name: str

    def run(
        self, task: Task, config: TrainConfig, sparsity: float, workdir: pathlib.Path, dense_dir=None
    ) -> Record:
        """Train and prune to exactly ``sparsity`` under ``workdir``; ``dense_dir``, when given, is
        a shared directory for the dense level 0 (methods that start from dense training reuse it)."""


def dataset_problems(method: Method, info: Any) -> list[str]:
    """The problems of ``method``'s options on a dataset described by ``info`` (a ``DatasetInfo``):
    those its optional ``validate(info)`` returns; ``[]`` when it has none."""
    validate = getattr(method, "validate", None)
    return list(validate(info)) if validate is not None else []


def validation_problem(method: Method, num_val: int) -> str | None:
    """Why ``method`` cannot run on a task whose validation split has ``num_val`` examples: what it chooses or weighs
    on that split (its optional ``validation_reads()``, each named by its option) when the split is empty; else None."""
    reads = list(method.validation_reads()) if hasattr(method, "validation_reads") else []
    if num_val >= 1 or not reads:
        return None
    return (f"{type(method).__name__} reads the validation split for {'; '.join(reads)}, but this task's validation "
            "split has 0 examples: give the dataset a validation split, or change those options")


def level_keep_counts(mask, sparsity: float, fraction: float) -> list[int]:
    """Kept counts per level for iterative pruning of ``fraction`` of the remaining weights."""
    return pruning_plan(num_prunable(mask), sparsity, fraction)


def budget_steps(config: TrainConfig, num_levels: int) -> int:
    """Total optimizer steps of an iterative run with ``num_levels`` pruning levels."""
    return config.steps * (num_levels + 1)


def finish_record(name: str, sparsity: float, final: Record, levels: list[Record] | None = None, **extra) -> Record:
    """The common record: method, target sparsity, the final level's fields, and the level history."""
    record = {"method": name, "target_sparsity": sparsity, **final, **extra}
    record["train_time_s"] = sum(r["train_time_s"] for r in levels) if levels else final["train_time_s"]
    if levels is not None:
        record["levels"] = levels
    return record
