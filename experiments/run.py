"""Run the whole comparison (dense, four baselines, Ballot) from one ml_collections config.

``run_experiment(config, workdir)`` loads the dataset once, builds the model and the device mesh,
and runs every (seed, sparsity, method) of the config, each method with the same training config
and the same shared dense level 0 per seed. Every finished method writes its record next to its
directory; a re-run with the same ``workdir`` loads finished records instead of training again (and
the engine skips finished levels inside an interrupted method). At the end it writes
``results.json``, ``results.md`` (the tables, also printed) and plots of accuracy / CWV / MCD
against sparsity. See experiments/README.md for the config fields and the workdir layout.

The dataset modules (``python -m experiments.digits`` ...) only provide ``get_config()`` and call
:func:`main`, which parses ``--config.<field>=...`` overrides and ``--workdir``.

Before any work, the whole config is validated (:func:`config_problems`: every method's options,
the training config, the model's kwargs, the lists, and, once the data is loaded, what depends on
the dataset), and one ``ConfigError`` lists every problem; nothing is written to ``workdir`` but its
lock (``workdir/.lock``, :func:`workdir_lock`), which a second run on the same workdir cannot take.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import pathlib
import re
import socket
import sys
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from ml_collections import config_dict

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, TrainConfig
from ballot_jax.methods import METHODS as METHOD_CLASSES
from experiments import reports
from experiments.reports import results_markdown, summarize_record, write_plots  # noqa: F401 (re-exported)

Record = dict[str, Any]

DEFAULT_METHODS = "dense,magnitude,lth,safecompress,fairscratch,ballot"
REFERENCE = "ballot"  # the method whose fairness improvement over the others is tabulated
# Config keys that may change between runs sharing a workdir: lists that may grow, and settings
# that do not change any result (checkpoint frequency, eval batch size, the decoded-image cache).
MUTABLE_KEYS = ("methods", "sparsities", "sparsity", "seeds")
RUN_ONLY_KEYS = ("train.checkpoint_every", "train.eval_batch_size", "data.cache_dir")


class ConfigMismatchError(ValueError):
    """``workdir`` holds results of a different config."""


class ConfigError(ValueError):
    """The config is invalid; ``problems`` lists every problem, each naming its ``--config.`` field
    and what it accepts."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"invalid config ({len(self.problems)} problem(s)):\n  " + "\n  ".join(self.problems))


class WorkdirLockedError(RuntimeError):
    """Another run holds the workdir's lock."""


# --------------------------------------------------------------------------------------------------
# Methods: registry name -> factory(**options) -> Method


def _factory(name: str) -> Callable[..., Any]:
    def factory(**options):
        return build_method(METHOD_CLASSES[name], options)

    factory.__name__ = f"make_{name}"
    factory.__doc__ = f"The '{name}' method, built from keyword options (see method_options)."
    return factory


METHODS: dict[str, Callable[..., Any]] = {name: _factory(name) for name in METHOD_CLASSES}


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


_SIMPLE = (bool, int, float, str)
_TYPE_NAMES = {"bool": bool, "int": int, "float": float, "str": str}


def _option_value(f: dataclasses.Field, default: Any) -> Any:
    """A config value for a method field's default, or MISSING when it is not configurable."""
    if isinstance(default, _SIMPLE):
        return default
    if isinstance(default, tuple) and all(isinstance(v, _SIMPLE) for v in default):
        return default
    if default is None:  # Optional[...] field: a typed placeholder, overridable from the CLI
        names = re.findall(r"\b(bool|int|float|str)\b", str(f.type))
        if names:
            return config_dict.placeholder(_TYPE_NAMES[names[0]])
    return dataclasses.MISSING


def method_options(cls: type) -> config_dict.ConfigDict:
    """The configurable options of a method dataclass, as a flat ConfigDict of its defaults.

    Simple fields (bool/int/float/str, tuples of them, Optional ones as typed placeholders) become
    options; the fields of a nested dataclass default (e.g. ``Ballot.score``, a ``BallotConfig``)
    are flattened into the same dict. ``name`` and ``fraction`` (a top-level option) are left out.
    """
    options: dict[str, Any] = {}

    def add(field_name: str, value: Any, owner: str) -> None:
        if field_name in options:
            raise ValueError(f"{cls.__name__}: option {field_name!r} ({owner}) is ambiguous")
        options[field_name] = value

    for f in dataclasses.fields(cls):
        if f.name in ("name", "fraction"):
            continue
        default = _field_default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            for g in dataclasses.fields(default):
                value = _option_value(g, getattr(default, g.name))
                if value is not dataclasses.MISSING:
                    add(g.name, value, f"{f.name}.{g.name}")
            continue
        value = _option_value(f, default)
        if value is not dataclasses.MISSING:
            add(f.name, value, f.name)
    return config_dict.ConfigDict(options)


def build_method(cls: type, options: dict[str, Any]):
    """``cls(**options)``, routing flattened options into nested dataclass fields (see
    :func:`method_options`). ``fraction`` is passed only to methods that have that field."""
    options = dict(options)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    fraction = options.pop("fraction", None)
    if fraction is not None and "fraction" in names:
        kwargs["fraction"] = fraction
    for f in dataclasses.fields(cls):
        default = _field_default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            sub = {g.name: options.pop(g.name) for g in dataclasses.fields(default) if g.name in options}
            if sub:
                kwargs[f.name] = dataclasses.replace(default, **sub)
        elif f.name in options and f.name not in ("name", "fraction"):
            kwargs[f.name] = options.pop(f.name)
    if options:
        raise ValueError(f"unknown options for {cls.__name__}: {sorted(options)}")
    return cls(**kwargs)


def make_method(name: str, config: config_dict.ConfigDict):
    """The method ``name`` with its options from ``config[name]`` and ``config.fraction``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(METHODS)}")
    options = config[name].to_dict() if name in config else {}
    return METHODS[name](fraction=float(config.fraction), **options)


# --------------------------------------------------------------------------------------------------
# Config


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data(name: str) -> str:
    """``<repo>/../shared/data/<name>`` as an absolute path if it exists, else ``""`` (unset)."""
    path = (REPO_ROOT.parent / "shared" / "data" / name).resolve()
    return str(path) if path.exists() else ""


def base_config() -> config_dict.ConfigDict:
    """Defaults shared by every experiment; the dataset modules override what they need."""
    c = config_dict.ConfigDict()
    c.dataset = "digits"  # a name of ballot_jax.data.LOADERS
    c.data = config_dict.ConfigDict()  # keyword arguments of the dataset's loader
    c.data_dir = ""  # passed to the loader as data_dir when not empty
    c.model = "mlp"  # a name of ballot_jax.models.MODELS
    c.model_kwargs = model_kwargs_config()  # the model's constructor kwargs; unset: the model's default
    # One training phase (ballot_jax.engine.loop.TrainConfig); the seed comes from `seeds`.
    c.train = config_dict.ConfigDict(
        {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "seed"}
    )
    c.methods = DEFAULT_METHODS  # comma-separated names of METHODS, run in this order
    c.sparsities = "0.8"  # comma-separated target sparsities (fraction of prunable weights pruned)
    c.sparsity = config_dict.placeholder(float)  # a single sparsity; overrides `sparsities`
    c.seeds = "0"  # comma-separated training seeds (the data split is fixed by the loader)
    c.fraction = 0.2  # fraction of the remaining weights pruned per level (lth, ballot, magnitude's budget, ...)
    for name in METHODS:
        options = method_options(METHOD_CLASSES[name])
        if len(options):
            c[name] = options
    return c


def image_config(dataset: str, data_dir: str, batch_size: int) -> config_dict.ConfigDict:
    """``base_config()`` with the CPU-sized defaults the image experiments share: SmallCNN at its
    defaults (channels 32, 64; dense 128; no normalisation), 300 steps of ``batch_size`` a level,
    lr 0.05, rewind step k = 20, and an optional decoded-image cache (``data.cache_dir``)."""
    c = base_config()
    c.dataset = dataset
    c.data_dir = data_dir
    c.data.cache_dir = config_dict.placeholder(str)  # store decoded images here for re-use
    c.model = "small_cnn"
    c.train.steps = 300
    c.train.batch_size = batch_size
    c.train.learning_rate = 0.05
    c.train.rewind_step = 20
    return c


def parse_list(value: Any, kind: type) -> list:
    """``"0.5, 0.8"`` / ``0.8`` / ``(0.5, 0.8)`` -> ``[kind(v), ...]``, order kept, duplicates dropped."""
    if isinstance(value, str):
        items = [v.strip() for v in value.strip("()[] ").split(",")]
        items = [v for v in items if v]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        items = [value]
    out = []
    for v in items:
        v = kind(v)
        if v not in out:
            out.append(v)
    return out


def resolve_lists(config: config_dict.ConfigDict) -> tuple[list[str], list[float], list[int]]:
    """(methods, sparsities, seeds) of ``config``, validated (``ConfigError`` lists every problem of
    them); ``config.sparsity`` wins if set."""
    methods, sparsities, seeds, problems = _lists(config)
    if problems:
        raise ConfigError(problems)
    return methods, sparsities, seeds


MAX_SEED = 2**31 - 1
SEEDS_ACCEPTED = f"comma-separated integers in [0, {MAX_SEED}], e.g. 0,1,2"
SPARSITIES_ACCEPTED = "comma-separated numbers in (0, 1), e.g. 0.5,0.8"


def _seed(value: Any) -> int:
    """``value`` as a training seed, an integer in [0, MAX_SEED]; ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not 0 <= int(value) <= MAX_SEED:
        raise ValueError(f"not a seed: {value!r}")
    return int(value)


def _unit(value: Any) -> float:
    """``value`` as a float in (0, 1); ``ValueError`` otherwise."""
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"not in (0, 1): {value!r}")
    return float(value)


def _parsed(
    config: config_dict.ConfigDict, key: str, kind: Callable[[Any], Any], accepted: str
) -> tuple[list, list[str]]:
    """``(parse_list(config[key], kind), [])``, or ``([], [problem naming key and accepted])``."""
    try:
        return parse_list(config[key], kind), []
    except (TypeError, ValueError):
        return [], [f"--config.{key}={config[key]!r}: expected {accepted}"]


def _lists(config: config_dict.ConfigDict) -> tuple[list[str], list[float], list[int], list[str]]:
    """(methods, sparsities, seeds, problems) of ``config``; ``config.sparsity`` wins if set."""
    methods, problems = _parsed(config, "methods", str, "comma-separated method names")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        what = f"unknown method(s) {unknown}" if unknown else "no method"
        problems = [f"--config.methods={config.methods!r}: {what}; "
                    f"expected comma-separated names of {', '.join(METHODS)}"]
        methods = [m for m in methods if m in METHODS]
    key = "sparsity" if config.sparsity is not None else "sparsities"
    sparsities, more = _parsed(config, key, _unit, SPARSITIES_ACCEPTED)
    if not more and not sparsities and any(m != "dense" for m in methods):
        more = [f"--config.sparsities is empty: expected {SPARSITIES_ACCEPTED}"]
    seeds, seed_problems = _parsed(config, "seeds", _seed, SEEDS_ACCEPTED)
    if not seeds and not seed_problems:
        seed_problems = [f"--config.seeds is empty: expected {SEEDS_ACCEPTED}"]
    _, fraction = _parsed(config, "fraction", _unit, "a number in (0, 1)")
    return methods, sparsities, seeds, problems + more + seed_problems + fraction


def config_to_json(config: config_dict.ConfigDict) -> dict[str, Any]:
    """The config as plain JSON data (tuples become lists)."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences that forbid sharing a workdir (see MUTABLE_KEYS, RUN_ONLY_KEYS).

    Options of a method that appear on one side only (a method that could not be imported then,
    or gained an option since) are not differences: only options present on both sides count.
    ``model_kwargs`` are compared as the model is built (unset ones at the model's defaults).
    """
    a, b = _flatten(_as_built(saved)), _flatten(_as_built(current))
    diffs = []
    for key in sorted(set(a) | set(b)):
        top = key.split(".")[0]
        if top in MUTABLE_KEYS or key in RUN_ONLY_KEYS:
            continue
        if top in METHODS and (key not in a or key not in b):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {a.get(key, '<absent>')!r} (saved) != {b.get(key, '<absent>')!r} (now)")
    return diffs


def check_config(config: config_dict.ConfigDict, workdir: pathlib.Path) -> None:
    """Raise ``ConfigMismatchError`` unless ``workdir/config.json`` (if any) describes the same experiment."""
    path = workdir / "config.json"
    current = config_to_json(config)
    if path.exists():
        saved = checkpoints.read_json(path)
        diffs = config_differences(saved, current)
        if diffs:
            raise ConfigMismatchError(
                f"{workdir} holds results of a different config:\n  " + "\n  ".join(diffs) + "\n"
                "Choose another --workdir, or delete that directory to start over. (Only the "
                f"lists {', '.join(MUTABLE_KEYS[:-1])} and {MUTABLE_KEYS[-1]} may change between runs "
                "sharing a workdir.)"
            )


def save_config(config: config_dict.ConfigDict, workdir: pathlib.Path) -> None:
    """Write ``workdir/config.json`` (after :func:`check_config`)."""
    checkpoints.write_json(workdir / "config.json", config_to_json(config))


def train_config(config: config_dict.ConfigDict, seed: int) -> TrainConfig:
    """The engine's TrainConfig of ``config.train`` with ``seed``."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train = config.train.to_dict()
    unknown = sorted(set(train) - fields)
    if unknown:
        raise ValueError(f"--config.train has unknown fields {unknown}; valid: {sorted(fields - {'seed'})}")
    try:
        return TrainConfig(**train, seed=int(seed))
    except ValueError as err:
        raise ValueError(f"--config.train is invalid: {err}") from err


# --------------------------------------------------------------------------------------------------
# Model kwargs: every model's constructor options, set only for the model that takes them


def _model_fields(cls: type) -> dict[str, Any]:
    """The constructor options of a model class and their defaults (``num_classes`` comes from the data)."""
    return {f.name: _field_default(f) for f in dataclasses.fields(cls)
            if f.init and f.name not in ("parent", "name", "num_classes")}


def _option_type(default: Any) -> type | None:
    """The config type of a model option's default (a sequence is a tuple), or None if not configurable."""
    for kind in (bool, int, float, str):
        if isinstance(default, kind):
            return kind
    return tuple if isinstance(default, (tuple, list)) else None


def model_kwargs_config() -> config_dict.ConfigDict:
    """Every constructor option of every model of ``ballot_jax.models.MODELS``, unset (a typed
    placeholder: the chosen model's default); an option that is an int for one model and a float
    for another (``width``) is a float, passed on as an int to the models that take an int."""
    from ballot_jax.models import MODELS

    types: dict[str, type] = {}
    for cls in MODELS.values():
        for name, default in _model_fields(cls).items():
            kind = _option_type(default)
            if kind is None:
                continue
            seen = types.setdefault(name, kind)
            if seen != kind:
                if {seen, kind} != {int, float}:
                    raise TypeError(f"model option {name!r} is a {seen.__name__} and a {kind.__name__}")
                types[name] = float
    return config_dict.ConfigDict({name: config_dict.placeholder(kind) for name, kind in types.items()})


def _model_kwargs(model: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the constructor kwargs of ``model`` among the set ``options``, problems): a set option the
    model does not take, or a non-integer for an int option, is a problem."""
    from ballot_jax.models import MODELS

    if model not in MODELS:
        return {}, [f"--config.model={model!r}: expected one of {', '.join(MODELS)}"]
    accepted = _model_fields(MODELS[model])
    kwargs, problems = {}, []
    for key, value in options.items():
        if value is None:
            continue
        if key not in accepted:
            problems.append(f"--config.model_kwargs.{key}={value!r}: model {model!r} does not take it; it takes "
                            f"{', '.join(sorted(accepted))}")
        elif isinstance(accepted[key], int) and not isinstance(accepted[key], bool) and isinstance(value, float):
            if value.is_integer():
                kwargs[key] = int(value)
            else:
                problems.append(f"--config.model_kwargs.{key}={value!r}: model {model!r} takes an integer")
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    return kwargs, problems


def model_kwargs(config: config_dict.ConfigDict) -> dict[str, Any]:
    """The set ``config.model_kwargs`` for ``config.model`` (unset ones keep the model's defaults);
    ``ConfigError`` if one is set that the model does not take."""
    kwargs, problems = _model_kwargs(config.model, config.model_kwargs.to_dict())
    if problems:
        raise ConfigError(problems)
    return kwargs


def unset_foreign_model_kwargs(config: config_dict.ConfigDict, keep: Iterable[str] = ()) -> None:
    """Unset the ``config.model_kwargs`` that ``config.model`` does not take, except the fields named
    in ``keep`` (``model_kwargs.<name>``: those the command line set, reported by :func:`model_kwargs`).
    So a dataset config written for SmallCNN (``model_kwargs.dense``) runs ``--config.model=resnet18``."""
    from ballot_jax.models import MODELS

    if config.model not in MODELS:
        return
    accepted = _model_fields(MODELS[config.model])
    foreign = [k for k, v in config.model_kwargs.items()
               if v is not None and k not in accepted and f"model_kwargs.{k}" not in keep]
    for key in foreign:
        config.model_kwargs[key] = None
    if foreign:
        _log(f"model {config.model!r} does not take the dataset config's model_kwargs {foreign}: unset")


def _as_built(config_json: dict[str, Any]) -> dict[str, Any]:
    """A config (as JSON) with ``model_kwargs`` replaced by the kwargs its model is built with, unset
    ones at the model's defaults (so a config written before an option existed compares equal)."""
    from ballot_jax.models import MODELS

    model = config_json.get("model")
    if model not in MODELS or not isinstance(config_json.get("model_kwargs"), dict):
        return config_json
    kwargs, _ = _model_kwargs(model, config_json["model_kwargs"])
    built = {**_model_fields(MODELS[model]), **kwargs}
    return {**config_json, "model_kwargs": json.loads(json.dumps(built, default=str))}


# --------------------------------------------------------------------------------------------------
# Validation: every problem of a config, found before anything binds the workdir


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
    from ballot_jax.methods.base import dataset_problems

    cls = METHOD_CLASSES[name]
    options = config[name].to_dict() if name in config else {}
    method, problems = _built(name, cls, options, config.fraction)
    if issubclass(cls, Ballot):
        problems += _ballot_problems(name, options, config, data, devices)
    if method is not None and data is not None:
        problems += [f"--config.{name}.{p}" for p in dataset_problems(method, data.info)]
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
    from ballot_jax.objectives import SURROGATES, resolve_surrogate

    problems = []

    def bad(field: str, accepted: str) -> None:
        problems.append(f"--config.{name}.{field}={options[field]!r}: expected {accepted}")

    choices_of = {"lr": ("rewind", "warmup_cosine"), "disparity": SURROGATES, "score_split": ("train", "val")}
    for field, choices in choices_of.items():
        if field in options and options[field] not in choices:
            bad(field, "one of " + ", ".join(map(repr, choices)))
    for field in ("score_batches", "per_group_batch"):
        if field in options and not options[field] >= 1:
            bad(field, "an integer >= 1")
    if options.get("per_group_batch", 0) >= 1 and options["per_group_batch"] % devices:
        bad("per_group_batch", f"a multiple of the number of devices ({devices})")
    if "disparity_temperature" in options and not options["disparity_temperature"] > 0:
        bad("disparity_temperature", "a number > 0")
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
        if empty:
            bad("score_split", f"a split where every group has examples: group(s) {empty} have none in {split!r}")
    return problems


# --------------------------------------------------------------------------------------------------
# Running


def _log(message: str) -> None:
    print(f"[experiments] {message}", file=sys.stderr, flush=True)


def _is_writer() -> bool:
    import jax

    return jax.process_index() == 0


def sparsity_name(sparsity: float) -> str:
    """Directory name of a target sparsity: ``sparsity_0.8``."""
    return f"sparsity_{sparsity:g}"


def method_dir(workdir: pathlib.Path, seed: int, sparsity: float, method: str) -> pathlib.Path:
    """Where ``method`` trains: ``seed_S/dense`` for the dense run, else ``seed_S/sparsity_X/method``."""
    if method == "dense":
        return workdir / f"seed_{seed}" / "dense"
    return workdir / f"seed_{seed}" / sparsity_name(sparsity) / method


def record_path(directory: pathlib.Path) -> pathlib.Path:
    """The method's record, next to its directory: ``.../lth`` -> ``.../lth.record.json``."""
    return directory.with_name(directory.name + ".record.json")


def load_data(config: config_dict.ConfigDict):
    """``ballot_jax.data.load_dataset`` with ``config.data`` (None values left to the loader's
    defaults) and ``config.data_dir`` when set."""
    import inspect

    from ballot_jax.data import LOADERS, load_dataset

    kwargs = {k: v for k, v in config.data.to_dict().items() if v is not None}
    if config.data_dir:
        kwargs["data_dir"] = config.data_dir
    elif config.dataset in LOADERS:
        param = inspect.signature(LOADERS[config.dataset]).parameters.get("data_dir")
        if param is not None and param.default is inspect.Parameter.empty:
            raise ValueError(
                f"dataset {config.dataset!r} needs its files: pass --config.data_dir=<folder or .zip> "
                "(see the dataset module's docstring)"
            )
    return load_dataset(config.dataset, **kwargs)


def build_task(config: config_dict.ConfigDict, data=None) -> Task:
    """The Task: the config's model for the dataset's classes, and a mesh over all devices."""
    from ballot_jax.engine.mesh import data_mesh
    from ballot_jax.models import get_model

    data = load_data(config) if data is None else data
    model = get_model(config.model, data.info.num_classes, **model_kwargs(config))
    return Task(model, data, data_mesh())


def run_experiment(config: config_dict.ConfigDict, workdir: str | pathlib.Path) -> list[Record]:
    """Run every seed x sparsity x method of ``config`` under ``workdir``; write and return results.

    Dense runs once per seed (sparsity 0). All methods of a seed share the dense level 0 in
    ``workdir/seed_S/dense``. A method whose record file exists is loaded, not rerun. Before any
    work: ``WorkdirLockedError`` if another run holds ``workdir``; ``ConfigMismatchError`` if it
    holds another config's results; ``ConfigError`` listing every problem of ``config`` (checked
    against the dataset once it is loaded, which happens only when something is left to run).
    ``config.json`` is written only then, so a config that fails binds nothing.
    """
    t_start = time.perf_counter()
    workdir = pathlib.Path(workdir)
    methods, sparsities, seeds, problems = _lists(config)
    if problems:  # no jobs to plan: load the data only to report every problem at once
        raise ConfigError(config_problems(config, _load_data_checked(config)))
    jobs = job_list(methods, sparsities, seeds)
    with workdir_lock(workdir):
        check_config(config, workdir)
        pending = [job for job in jobs if not record_path(method_dir(workdir, *job)).exists()]
        data = _load_data_checked(config) if pending else None
        problems = config_problems(config, data)
        if problems:
            raise ConfigError(problems)
        save_config(config, workdir)
        records = _run_jobs(config, workdir, jobs, data)
        if _is_writer():
            write_results(records, config, workdir)
            print((workdir / "results.md").read_text())
    _log(f"done in {time.perf_counter() - t_start:.1f}s; results in {workdir}")
    return records


def job_list(methods: Sequence[str], sparsities: Sequence[float], seeds: Sequence[int]) -> list[tuple[int, float, str]]:
    """The (seed, sparsity, method) jobs in running order: per seed, dense (sparsity 0), then every
    other method at every sparsity."""
    jobs = []
    for seed in seeds:
        if "dense" in methods:
            jobs.append((seed, 0.0, "dense"))
        for sparsity in sparsities:
            jobs.extend((seed, sparsity, m) for m in methods if m != "dense")
    return jobs


def _load_data_checked(config: config_dict.ConfigDict):
    """The config's dataset; a loader's error (missing or damaged files, a bad option) joins the
    config's other problems in one ``ConfigError``."""
    t0 = time.perf_counter()
    try:
        data = load_data(config)
    except (ValueError, TypeError, OSError) as err:
        where = f"--config.dataset={config.dataset!r} (with --config.data.*, --config.data_dir)"
        raise ConfigError(config_problems(config) + [f"{where}: {err}"]) from err
    info = data.info
    _log(
        f"dataset {info.name}: {data.train.num_examples}/{data.val.num_examples}/{data.test.num_examples} "
        f"train/val/test, {info.num_classes} classes, {info.num_groups} groups ({time.perf_counter() - t0:.1f}s)"
    )
    return data


def _run_jobs(config: config_dict.ConfigDict, workdir: pathlib.Path, jobs, data) -> list[Record]:
    """Run (or load, when its record exists) every job; the records in job order."""
    instances = {name: make_method(name, config) for name in dict.fromkeys(name for _, _, name in jobs)}
    train_configs = {seed: train_config(config, seed) for seed in dict.fromkeys(seed for seed, _, _ in jobs)}
    task = None
    records: list[Record] = []
    for i, (seed, sparsity, name) in enumerate(jobs, start=1):
        directory = method_dir(workdir, seed, sparsity, name)
        path = record_path(directory)
        where = f"[{i}/{len(jobs)}] seed {seed} {name}" + (f" sparsity {sparsity:g}" if name != "dense" else "")
        if path.exists():
            records.append(checkpoints.read_json(path))
            _log(f"{where}: finished earlier, loaded {path}")
            continue
        if task is None:
            task = build_task(config, data)
            _log(f"model {config.model}; {task.mesh.devices.size} device(s)")
        _log(f"{where}: running in {directory}")
        t0 = time.perf_counter()
        record = instances[name].run(
            task, train_configs[seed], sparsity, directory, dense_dir=workdir / f"seed_{seed}" / "dense"
        )
        record = {**record, "seed": seed, "dataset": config.dataset, "wall_time_s": time.perf_counter() - t0}
        checkpoints.write_json(path, record)
        records.append(record)
        _log(
            f"{where}: test acc {record['test']['accuracy']:.4f}  CWV {record['test']['cwv']:.5f}  "
            f"MCD {record['test']['mcd']:.4f}  ({record['wall_time_s']:.1f}s)"
        )
    return records


# --------------------------------------------------------------------------------------------------
# One run per workdir


LOCK_FILE = ".lock"


@contextlib.contextmanager
def workdir_lock(workdir: pathlib.Path):
    """Hold ``workdir``'s exclusive lock while the block runs (creating ``workdir``).

    ``fcntl.flock`` on ``workdir/.lock``, which names its holder (PID, host, start time): a second
    run fails at once with ``WorkdirLockedError`` naming them. The kernel releases the lock when its
    process dies, so a lock left by a killed run is taken over (with a log line). Multi-host:
    process 0 locks for all processes, and all of them fail together if it cannot.
    """
    import jax

    fd, error = None, None
    if jax.process_index() == 0:
        try:
            fd = _lock(workdir)
        except WorkdirLockedError as err:
            error = err
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        if not multihost_utils.broadcast_one_to_all(np.int32(error is None)) and error is None:
            error = WorkdirLockedError(f"{workdir} is in use by another run (process 0 could not lock it)")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if fd is not None:
            _unlock(fd)


def _lock(workdir: pathlib.Path) -> int:
    """The descriptor of ``workdir/.lock``, locked and naming this process; ``WorkdirLockedError``
    naming the holder if another process holds it."""
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise WorkdirLockedError(
            f"{workdir} is in use by another run ({_describe(holder)}): wait for it to finish, or choose "
            "another --workdir"
        ) from None
    stale = _lock_holder(fd)
    if stale:
        _log(f"{workdir}: taking over the stale lock of {_describe(stale)}, a run that ended without releasing it")
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    return fd


def _lock_holder(fd: int) -> dict[str, Any]:
    """The holder the lock file names; ``{}`` if it names none (released, or being taken)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "PID not written yet: it is starting"
    return f"PID {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"


def _unlock(fd: int) -> None:
    os.ftruncate(fd, 0)  # a run that finishes leaves no holder behind
    os.close(fd)  # releases the lock


# --------------------------------------------------------------------------------------------------
# Reports: the tables, the paired comparison over seeds and the plots live in experiments/reports.py.


def report_against(config: config_dict.ConfigDict) -> list[str] | None:
    """The methods the paired comparison sets against every other pruning method:
    ``config.report_against`` (comma-separated names) when the config has that field and it is not
    empty, else None (``reports.default_against``: REFERENCE and every method named "ballot*")."""
    value = config.get("report_against")
    return parse_list(value, str) if value else None


def write_results(records: Sequence[Record], config: config_dict.ConfigDict, workdir: pathlib.Path) -> None:
    """results.json, results.md and the plots (:func:`experiments.reports.write_results`)."""
    reports.write_results(records, workdir, config_to_json(config), reference=REFERENCE,
                          against=report_against(config))


# --------------------------------------------------------------------------------------------------
# Command line


def enable_compilation_cache(directory: str | pathlib.Path) -> None:
    """Use JAX's persistent compilation cache in ``directory`` (every compilation, however short),
    unless ``JAX_COMPILATION_CACHE_DIR`` already chose one. Call before the first compilation."""
    import os

    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    jax.config.update("jax_compilation_cache_dir", str(pathlib.Path(directory).absolute()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# Errors whose message tells the user what to do; the command line prints them without a traceback.
USER_ERRORS = (ConfigError, ConfigMismatchError, WorkdirLockedError, checkpoints.CheckpointMismatchError)


def main(argv: Sequence[str] | None, get_config: Callable[[], config_dict.ConfigDict]) -> None:
    """``python -m experiments.<dataset> [--workdir DIR] [--config.<field>=VALUE ...]``.

    Defines the ``--config`` flag (an ml_collections ConfigDict from ``get_config()``) and
    ``--workdir`` (default ``runs/<dataset>`` under the current directory), then runs
    :func:`run_experiment`. Call it as ``run.main(sys.argv, get_config)``. Model kwargs of the
    dataset config that ``--config.model`` does not take are unset (those the command line set are
    errors); a ``USER_ERRORS`` error exits with its one message and status 1.
    """
    from absl import app, flags, logging
    from ml_collections import config_flags

    if "config" not in flags.FLAGS:
        config_flags.DEFINE_config_dict("config", get_config(), "Experiment config; override fields with --config.<field>=...")
    if "workdir" not in flags.FLAGS:
        flags.DEFINE_string("workdir", None, "Output directory (default: runs/<dataset>). Re-runs skip finished work.")
    if "compilation_cache" not in flags.FLAGS:
        flags.DEFINE_bool(
            "compilation_cache", True,
            "Persist XLA compilations in <workdir>/jax_cache (the methods compile the same steps again "
            "and again; re-runs start warm). Ignored when JAX_COMPILATION_CACHE_DIR is set.",
        )

    def _main(args: Sequence[str]) -> None:
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(args[1:])}")
        from ballot_jax.engine.mesh import maybe_initialize_distributed

        maybe_initialize_distributed()  # before any other JAX call
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
        config = flags.FLAGS.config
        unset_foreign_model_kwargs(config, keep=config_flags.get_override_values(flags.FLAGS["config"]))
        workdir = pathlib.Path(flags.FLAGS.workdir or pathlib.Path("runs") / config.dataset)
        if flags.FLAGS.compilation_cache:
            enable_compilation_cache(workdir / "jax_cache")
        try:
            run_experiment(config, workdir)
        except USER_ERRORS as err:  # one short message, no traceback: the message says what to do
            raise SystemExit(f"error: {err}") from None

    app.run(_main, argv=list(argv) if argv is not None else None)
