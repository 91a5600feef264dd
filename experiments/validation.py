"""Validation: every problem of an experiment config, found before anything binds the workdir.

:func:`config_problems` lists every problem of a config, each naming its ``--config.`` field and
what it accepts: the lists, the model's kwargs, the training config and every listed method's
options (each rejected option named on its own), and, given the loaded dataset, what depends on it.
``ConfigError`` (defined in ``experiments.config``, which raises it too) carries them all in one
error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from ml_collections import config_dict

from ballot_jax.methods import METHODS as METHOD_CLASSES
from experiments.config import ConfigError  # noqa: F401 (re-exported: it carries config_problems' list)
from experiments.config import _lists, _model_kwargs, _unit, train_config
from experiments.options import _field_default, build_method, method_options


def config_problems(config: config_dict.ConfigDict, data=None) -> list[str]:
    """Every problem of ``config``, each naming its ``--config.`` field and what it accepts: the
    lists, the model's kwargs, the training config, and every listed method's options. With ``data``
    (the loaded ``ballot_jax.data.Dataset``) also what depends on the dataset: binary-only metrics on
    a multi-class dataset, batches and balanced sampling against the groups, empty groups."""
    import jax

    devices = jax.device_count()
    methods, _, _, problems = _lists(config)
    problems += _model_kwargs(config.model, config.model_kwargs.to_dict())[1]
    problems += _train_problems(config, data, devices)
    for name in methods:
        problems += _method_problems(name, config, data, devices)
    return problems


def _train_problems(config: config_dict.ConfigDict, data, devices: int) -> list[str]:
    """The problems of ``config.train``: its own checks (``TrainConfig``), the batch size against
    the devices, and with ``data`` against the groups (balanced sampling) and the training examples."""
    try:
        train = train_config(config, 0)
    except ValueError as err:
        return [str(err)]
    b, problems = train.batch_size, []
    if b % devices:
        problems.append(f"--config.train.batch_size={b}: expected a multiple of the number of devices ({devices})")
    if data is not None:
        groups, examples = data.info.num_groups, data.train.num_examples
        if train.balanced_sampling and b % groups:
            problems.append(f"--config.train.batch_size={b}: train.balanced_sampling needs a multiple of the "
                            f"{groups} groups")
        if b > examples:
            problems.append(f"--config.train.batch_size={b}: expected at most the {examples} training examples")
    return problems


def _method_problems(name: str, config: config_dict.ConfigDict, data, devices: int) -> list[str]:
    """The problems of method ``name``'s options (``config[name]``), with ``data`` also its own
    dataset checks (``ballot_jax.methods.base.dataset_problems``)."""
    from ballot_jax.methods.ballot import Ballot
    from ballot_jax.methods.base import dataset_problems, validation_problem

    cls = METHOD_CLASSES[name]
    options = config[name].to_dict() if name in config else {}
    method, problems = _built(name, cls, options, config.fraction)
    if issubclass(cls, Ballot):
        problems += _ballot_problems(name, options, config, data, devices)
    if method is not None and data is not None:
        problems += [f"--config.{name}.{p}" for p in dataset_problems(method, data.info)]
        if problem := validation_problem(method, data.val.num_examples):
            sized_by = [f"--config.data.{k}" for k in ("val_fraction", "num_val", "split") if k in config.data]
            problems.append(f"--config.{name}: {problem}" + (f" (the split's size: {', '.join(sized_by)})" if sized_by else ""))
    return problems


def _built(name: str, cls: type, options: dict[str, Any], fraction: Any) -> tuple[Any, list[str]]:
    """``(the method, [])``, or ``(None, problems)``: the options its constructor rejects, found by
    adding the changed options one at a time (in field order) to the defaults, so that each problem
    names the option that caused it."""
    base = {"fraction": float(fraction)} if _is_unit(fraction) else {}
    try:
        return build_method(cls, {**base, **options}), []
    except (TypeError, ValueError) as err:
        error = err
    defaults = method_options(cls).to_dict()
    accepted, problems, order = dict(base), [], _field_order(cls)
    for key, value in sorted(options.items(), key=lambda item: order.get(item[0], math.inf)):
        if value == defaults.get(key, dataclasses.MISSING):
            continue
        try:
            build_method(cls, {**accepted, key: value})
            accepted[key] = value
        except (TypeError, ValueError) as err:
            problems.append(f"--config.{name}.{key}={value!r}: {err}")
    return None, problems or [f"--config.{name}: {error}"]


def _field_order(cls: type) -> dict[str, int]:
    """The position of each option of ``cls`` among its fields (a nested dataclass's options take
    the position of the field that holds it)."""
    order = {}
    for i, f in enumerate(dataclasses.fields(cls)):
        default = _field_default(f)
        nested = dataclasses.is_dataclass(default) and not isinstance(default, type)
        order.update({g.name: i for g in dataclasses.fields(default)} if nested else {f.name: i})
    return order


def _is_unit(value: Any) -> bool:
    """Whether ``value`` is a number in (0, 1)."""
    try:
        _unit(value)
    except (TypeError, ValueError):
        return False
    return True


def _ballot_problems(
    name: str, options: dict[str, Any], config: config_dict.ConfigDict, data, devices: int
) -> list[str]:
    """Ballot's options, checked by name here (``ballot_jax.methods.ballot`` checks some of them only
    when a run reaches them): choices, batch counts and sizes, and with ``data`` the disparity's
    binary targets, balanced sampling against the groups, and groups absent from ``score_split``."""
    from ballot_jax.methods.adversary import ADVERSARY_BALANCES
    from ballot_jax.methods.ballot import ADVERSARY_REACHES, DISPARITIES, DISTILL_GROUPS, DISTILL_TEACHERS, EPSILON_FLOORS, EPSILON_REFERENCES, MODE_RULES, MU_RULES, PRUNINGS, SELECTIONS, Ballot
    from ballot_jax.objectives import SOFT_WORST, SURROGATES, resolve_surrogate
    from ballot_jax.vote import VOTE_KINDS

    problems = []

    def bad(field: str, accepted: str) -> None:
        problems.append(f"--config.{name}.{field}={options[field]!r}: expected {accepted}")

    choices_of = {"lr": ("rewind", "warmup_cosine"), "disparity": DISPARITIES, "score_split": ("train", "val"),
                  "pruning": PRUNINGS, "selection": SELECTIONS, "rewind_selection": SELECTIONS,
                  "vote_kind": VOTE_KINDS, "mu_rule": MU_RULES, "mode_rule": MODE_RULES,
                  "epsilon_reference": EPSILON_REFERENCES, "adversary_balance": ADVERSARY_BALANCES,
                  "epsilon_floor": EPSILON_FLOORS, "distill_teacher": DISTILL_TEACHERS, "distill_groups": DISTILL_GROUPS,
                  "adversary_reach": ADVERSARY_REACHES}
    for field, choices in choices_of.items():
        if field in options and options[field] not in choices:
            bad(field, "one of " + ", ".join(map(repr, choices)))
    alternatives = options.get("disparity_alternatives", ())
    if not isinstance(alternatives, (tuple, list)) or any(d not in DISPARITIES[1:] for d in alternatives):
        bad("disparity_alternatives", "a tuple of disparities from " + ", ".join(map(repr, DISPARITIES[1:])))
    elif alternatives and not options.get("disparity_weights", (0.0,)):
        bad("disparity_alternatives", "() when disparity_weights is empty (the choice needs a μ search)")
    for field in ("score_batches", "per_group_batch"):
        if field in options and not options[field] >= 1:
            bad(field, "an integer >= 1")
    if options.get("per_group_batch", 0) >= 1 and options["per_group_batch"] % devices:
        bad("per_group_batch", f"a multiple of the number of devices ({devices})")
    if "distill" in options and not options["distill"] >= 0:
        bad("distill", "a number >= 0 (0: no distillation)")
    elif options.get("distill", 0) > 0 and options.get("refine") == "polish":
        bad("distill", "0 when refine is 'polish' (a polish phase has no dense teacher), or refine='retrain'")
    if "distill_temperature" in options and not options["distill_temperature"] > 0:
        bad("distill_temperature", "a number > 0")
    if (options.get("distill", 0) > 0 and options.get("distill_teacher") == "ticket"
            and tuple(options.get("disparity_weights", Ballot.disparity_weights))[:1] != (0.0,)):
        bad("distill_teacher", "'dense', or disparity_weights starting with 0 (the 'ticket' teacher is the μ = 0 candidate)")
    if options.get("adversary_reach", "all") == "below_mean" and (
            options.get("disparity", Ballot.disparity) != "adversary" or alternatives
            or tuple(options.get("disparity_weights", Ballot.disparity_weights))[:1] != (0.0,)
            or options.get("refine", Ballot.refine) != "retrain" or options.get("distill", 0) > 0):
        bad("adversary_reach", "'all', or disparity='adversary' with no disparity_alternatives, disparity_weights "
            "starting with 0 (the groups are the μ = 0 candidate's), refine='retrain' and distill=0")
    if "disparity_temperature" in options and not options["disparity_temperature"] > 0:
        bad("disparity_temperature", "a number > 0")
    if "disparity_decay" in options and not 0 < options["disparity_decay"] <= 1:
        bad("disparity_decay", "a number in (0, 1] (1: each batch's own cell losses)")
    elif options.get("disparity_decay", 1) < 1 and options.get("disparity", Ballot.disparity) not in SOFT_WORST:
        bad("disparity_decay", "1 unless disparity is 'worst_cell' or 'worst_group'")
    if data is None:
        return problems
    info = data.info
    if options.get("disparity") in SURROGATES:
        try:
            resolve_surrogate(options["disparity"], info.num_classes)
        except ValueError as err:
            bad("disparity", f"a disparity for {info.num_classes} classes ({err})")
    if options.get("balanced_sampling") and config.train.batch_size % info.num_groups:
        bad("balanced_sampling", f"False, or --config.train.batch_size ({config.train.batch_size}) a multiple "
                                 f"of the {info.num_groups} groups")
    split = options.get("score_split")
    if split in ("train", "val"):
        counts = np.bincount(getattr(data, split).group, minlength=info.num_groups)
        empty = [info.group_names[g] for g in np.flatnonzero(counts == 0)]
        if empty and counts.sum():  # an empty split is validation_problem's, where the method reads it
            bad("score_split", f"a split where every group has examples: group(s) {empty} have none in {split!r}")
    return problems

