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
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
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
    c.model_kwargs = config_dict.ConfigDict({"hidden": (128, 128)})  # the model's constructor kwargs
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
    """``base_config()`` with the CPU-sized defaults the image experiments share: SmallCNN (channels
    32, 64; dense 128; no normalisation), 300 steps of ``batch_size`` a level, lr 0.05, rewind step
    k = 20, and an optional decoded-image cache (``data.cache_dir``)."""
    c = base_config()
    c.dataset = dataset
    c.data_dir = data_dir
    c.data.cache_dir = config_dict.placeholder(str)  # store decoded images here for re-use
    c.model = "small_cnn"
    c.model_kwargs = config_dict.ConfigDict({"channels": (32, 64), "dense": 128, "norm": "none"})
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
    """(methods, sparsities, seeds) of ``config``, validated; ``config.sparsity`` wins if set."""
    methods = parse_list(config.methods, str)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid names: {', '.join(METHODS)}")
    if not methods:
        raise ValueError("config.methods is empty")
    sparsities = [config.sparsity] if config.sparsity is not None else parse_list(config.sparsities, float)
    sparsities = [float(s) for s in sparsities]
    pruned = [m for m in methods if m != "dense"]
    if pruned and not sparsities:
        raise ValueError("config.sparsities is empty")
    for s in sparsities:
        if not 0.0 < s < 1.0:
            raise ValueError(f"sparsities must be in (0, 1), got {s}")
    seeds = parse_list(config.seeds, int)
    if not seeds:
        raise ValueError("config.seeds is empty")
    return methods, sparsities, seeds


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
    """
    a, b = _flatten(saved), _flatten(current)
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
        saved = json.loads(path.read_text())
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
        raise ValueError(f"unknown config.train fields {unknown}; valid: {sorted(fields - {'seed'})}")
    try:
        return TrainConfig(**train, seed=int(seed))
    except ValueError as err:
        raise ValueError(f"config.train is invalid: {err}") from err


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


def model_kwargs(config: config_dict.ConfigDict) -> dict[str, Any]:
    """``config.model_kwargs`` minus those the model does not take (with a warning), so that
    ``--config.model=resnet18`` works on a config written for SmallCNN (``channels``, ``dense``)."""
    from ballot_jax.models import MODELS

    kwargs = config.model_kwargs.to_dict()
    cls = MODELS.get(config.model)
    if cls is None or not dataclasses.is_dataclass(cls):
        return kwargs  # get_model reports an unknown name
    accepted = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "num_classes"}
    ignored = sorted(set(kwargs) - accepted)
    if ignored:
        _log(f"model {config.model!r} takes none of model_kwargs {ignored}: ignored")
    return {k: v for k, v in kwargs.items() if k in accepted}


def run_experiment(config: config_dict.ConfigDict, workdir: str | pathlib.Path) -> list[Record]:
    """Run every seed x sparsity x method of ``config`` under ``workdir``; write and return results.

    Dense runs once per seed (sparsity 0). All methods of a seed share the dense level 0 in
    ``workdir/seed_S/dense``. A method whose record file exists is loaded, not rerun.
    """
    t_start = time.perf_counter()
    workdir = pathlib.Path(workdir)
    methods, sparsities, seeds = resolve_lists(config)
    # Fail before any work on bad method names/options or an invalid training config.
    instances = {name: make_method(name, config) for name in methods}
    train_configs = {seed: train_config(config, seed) for seed in seeds}
    check_config(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    jobs = []  # (seed, sparsity, method name)
    for seed in seeds:
        if "dense" in methods:
            jobs.append((seed, 0.0, "dense"))
        for sparsity in sparsities:
            jobs.extend((seed, sparsity, m) for m in methods if m != "dense")

    task = None
    records: list[Record] = []
    for i, (seed, sparsity, name) in enumerate(jobs, start=1):
        directory = method_dir(workdir, seed, sparsity, name)
        path = record_path(directory)
        where = f"[{i}/{len(jobs)}] seed {seed} {name}" + (f" sparsity {sparsity:g}" if name != "dense" else "")
        if path.exists():
            records.append(json.loads(path.read_text()))
            _log(f"{where}: finished earlier, loaded {path}")
            continue
        if task is None:
            t0 = time.perf_counter()
            task = build_task(config)
            info = task.data.info
            _log(
                f"dataset {info.name}: {task.data.train.num_examples}/{task.data.val.num_examples}/"
                f"{task.data.test.num_examples} train/val/test, {info.num_classes} classes, "
                f"{info.num_groups} groups; model {config.model}; {task.mesh.devices.size} device(s) "
                f"({time.perf_counter() - t0:.1f}s)"
            )
            save_config(config, workdir)  # once the data loaded: a config that fails early binds nothing
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

    save_config(config, workdir)
    if _is_writer():
        write_results(records, config, workdir)
        print((workdir / "results.md").read_text())
    _log(f"done in {time.perf_counter() - t_start:.1f}s; results in {workdir}")
    return records


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


def main(argv: Sequence[str] | None, get_config: Callable[[], config_dict.ConfigDict]) -> None:
    """``python -m experiments.<dataset> [--workdir DIR] [--config.<field>=VALUE ...]``.

    Defines the ``--config`` flag (an ml_collections ConfigDict from ``get_config()``) and
    ``--workdir`` (default ``runs/<dataset>`` under the current directory), then runs
    :func:`run_experiment`. Call it as ``run.main(sys.argv, get_config)``.
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
        workdir = pathlib.Path(flags.FLAGS.workdir or pathlib.Path("runs") / config.dataset)
        if flags.FLAGS.compilation_cache:
            enable_compilation_cache(workdir / "jax_cache")
        run_experiment(config, workdir)

    app.run(_main, argv=list(argv) if argv is not None else None)
