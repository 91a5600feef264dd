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

This module holds the running (data, task, jobs), the results and the command line; it uses, and
re-exports for its callers, the rest of the driver: ``experiments.options`` (the method registry:
``METHODS``, ``method_options``, ``build_method``, ``make_method``), ``experiments.config`` (the
defaults, the lists, the model kwargs, the config a workdir is bound to), ``experiments.validation``
(``config_problems``) and ``experiments.workdir`` (the layout and the lock).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Callable, Sequence

from ml_collections import config_dict

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task
from experiments import reports
from experiments.config import (  # noqa: F401 (re-exported)
    DEFAULT_METHODS,
    MUTABLE_KEYS,
    REPO_ROOT,
    RUN_ONLY_KEYS,
    ConfigError,
    ConfigMismatchError,
    _lists,
    _model_fields,
    base_config,
    check_config,
    config_differences,
    config_to_json,
    image_config,
    model_kwargs,
    model_kwargs_config,
    parse_list,
    resolve_lists,
    save_config,
    shared_data,
    train_config,
    unset_foreign_model_kwargs,
)
from experiments.options import METHOD_CLASSES, METHODS, build_method, make_method, method_options  # noqa: F401 (re-exported)
from experiments.reports import results_markdown, summarize_record, write_plots  # noqa: F401 (re-exported)
from experiments.validation import config_problems
from experiments.workdir import (  # noqa: F401 (re-exported)
    LOCK_FILE,
    WorkdirLockedError,
    _log,
    method_dir,
    record_path,
    sparsity_name,
    workdir_lock,
)

Record = dict[str, Any]

REFERENCE = "ballot"  # the method whose fairness improvement over the others is tabulated


# --------------------------------------------------------------------------------------------------
# Running


def _is_writer() -> bool:
    import jax

    return jax.process_index() == 0


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
