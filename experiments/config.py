"""Experiment config: the defaults, the method/sparsity/seed lists, the model kwargs, and the config a
workdir is bound to.

:func:`base_config` holds the defaults every experiment shares (:func:`image_config` those of the
image experiments), with one sub-dict per method read off its dataclass (``experiments.options``);
:func:`resolve_lists` parses the comma-separated methods, sparsities and seeds; :func:`train_config`
is the engine's ``TrainConfig`` of ``config.train``; :func:`model_kwargs` the model's constructor
kwargs (``config.model_kwargs`` holds every model's options, set only for the model that takes
them). :func:`check_config` and :func:`save_config` bind a workdir to one config
(``workdir/config.json``): only ``MUTABLE_KEYS`` and ``RUN_ONLY_KEYS`` may change between runs that
share it. ``ConfigError`` lives here (``resolve_lists`` and ``model_kwargs`` raise it);
``experiments.validation`` finds every problem of a config.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Iterable, Sequence

from ml_collections import config_dict

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import TrainConfig
from ballot_jax.methods import METHODS as METHOD_CLASSES
from experiments.options import METHODS, _field_default, method_options
from experiments.workdir import _log

DEFAULT_METHODS = "dense,magnitude,lth,safecompress,fairscratch,ballot,ballot_authors"
# Config keys that may change between runs sharing a workdir: lists that may grow, and settings
# that do not change any result (checkpoint frequency, eval batch size, the decoded-image cache).
MUTABLE_KEYS = ("methods", "sparsities", "sparsity", "seeds")
RUN_ONLY_KEYS = ("train.checkpoint_every", "train.eval_batch_size", "data.cache_dir")
# Method options added with a default that changed what the method computes: a saved config without
# the key ran with this value (Ballot's rewinding mode voted before session 6; its μ was the fairest
# admissible one before session 7; its accuracy constraint compared with the dense model before session 10).
LEGACY_VALUES = {"ballot.rewind_selection": "vote", "ballot.mu_rule": "fairest", "ballot.epsilon_reference": "dense"}


class ConfigMismatchError(ValueError):
    """``workdir`` holds results of a different config."""


class ConfigError(ValueError):
    """The config is invalid; ``problems`` lists every problem, each naming its ``--config.`` field
    and what it accepts."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"invalid config ({len(self.problems)} problem(s)):\n  " + "\n  ".join(self.problems))



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
    or gained an option since) are not differences: only options present on both sides count, an
    option of ``LEGACY_VALUES`` missing from the saved config counting as its legacy value there.
    ``model_kwargs`` are compared as the model is built (unset ones at the model's defaults).
    """
    a, b = _flatten(_as_built(saved)), _flatten(_as_built(current))
    for key, value in LEGACY_VALUES.items():
        if key.split(".")[0] in saved and key not in a:
            a[key] = value
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
                "Set those options back to the saved values (--config.KEY=VALUE) to continue it, choose "
                "another --workdir, or delete that directory to start over. (Only the "
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
