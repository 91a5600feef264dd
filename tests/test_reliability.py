"""Failing early and clearly (issue #11): config validation before any work, one run per workdir,
checksummed artefacts, library input errors, every model's options on the command line.

The command-line tests run ``python -m experiments.digits`` in subprocesses (each bounded by a
timeout) on a tiny config; they share one JAX compilation cache so that only the first compiles.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pathlib
import pkgutil
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import config_flags

import ballot_jax as bj
from ballot_jax import ballot
from ballot_jax.data import DamagedArchiveError, load_dataset
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, TrainConfig, init_state
from ballot_jax.engine.levels import LevelPlan, run_levels
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.grads import GroupGrads
from ballot_jax.models import MODELS
from engine_fixtures import mlp_model, toy_dataset
from experiments import cifar10, cifar100, digits, run

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 240
TINY = [
    "--config.train.steps=20", "--config.train.rewind_step=2", "--config.train.batch_size=40",
    "--config.methods=dense,magnitude", "--config.sparsity=0.5", "--config.seeds=0",
    "--config.model_kwargs.hidden=(16,)",
]


# --------------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """The environment of the command-line runs: the repo on the path, one shared compilation cache."""
    cache = tmp_path_factory.mktemp("jax_cache")
    return {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def digits_cmd(workdir: pathlib.Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.digits", f"--workdir={workdir}", *args]


def run_cli(cmd: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    """(the finished process, its wall seconds)."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    return proc, time.monotonic() - t0


def assert_one_message(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Failed with status 1 and one short error message holding ``needles``: no traceback."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr, proc.stderr[-3000:]
    message = proc.stderr[proc.stderr.index("error: "):]
    for needle in needles:
        assert needle in message, message


def flip_bytes(path: pathlib.Path, count: int = 8) -> None:
    """XOR ``count`` bytes in the middle of the file with 0xFF."""
    data = bytearray(path.read_bytes())
    start = max(0, min(len(data) - count, len(data) // 2))
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def records_by_method(workdir: pathlib.Path) -> dict[str, dict]:
    """The results' records of a finished run by method, without the wall/train times."""
    records = checkpoints.read_json(workdir / "results.json")["records"]
    return {r["method"]: {k: v for k, v in r.items() if "time" not in k and k != "levels"} for r in records}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cli_env):
    """One tiny finished run (dense + magnitude) from the command line: its workdir."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    proc, _ = run_cli(digits_cmd(workdir, *TINY), cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def copy_of(workdir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    target = tmp_path / "copy"
    shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("jax_cache"))
    return target


# --------------------------------------------------------------------------------------------------
# 1. Every problem of a config, before anything binds the workdir


def bad_config(**overrides):
    """``digits.get_config()`` with ``overrides`` (``a__b=v`` sets ``config.a.b``)."""
    config = digits.get_config()
    for key, value in overrides.items():
        *parents, leaf = key.split("__")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


def assert_unbound(workdir: pathlib.Path) -> None:
    """No config.json and no seed_* directory: the failed config bound nothing."""
    names = sorted(p.name for p in workdir.iterdir()) if workdir.exists() else []
    assert "config.json" not in names and not any(n.startswith("seed_") for n in names), names


def test_every_problem_is_listed_in_one_error_before_the_workdir_is_bound(tmp_path):
    config = bad_config(
        ballot__lr="rewnd", ballot__disparity="worstcell", ballot__score_split="validation",
        ballot__score_batches=0, ballot__per_group_batch=0, fraction=1.0,
        train__balanced_sampling=True, train__batch_size=84, seeds="-1",
    )
    with pytest.raises(run.ConfigError) as err:
        run.run_experiment(config, tmp_path / "w")
    expected = [
        ("--config.ballot.lr='rewnd'", "'rewind', 'warmup_cosine'"),
        ("--config.ballot.disparity='worstcell'", "'worst_cell'"),
        ("--config.ballot.score_split='validation'", "'train', 'val'"),
        ("--config.ballot.score_batches=0", ">= 1"),
        ("--config.ballot.per_group_batch=0", ">= 1"),
        ("--config.fraction=1.0", "(0, 1)"),
        ("--config.train.batch_size=84", "10 groups"),
        ("--config.seeds='-1'", "integers in [0,"),
    ]
    assert len(err.value.problems) == len(expected), err.value.problems
    for field, accepted in expected:
        assert any(p.startswith(field) and accepted in p for p in err.value.problems), (field, err.value.problems)
    assert_unbound(tmp_path / "w")


@pytest.mark.parametrize("overrides, field, accepted", [
    ({"seeds": "0.5"}, "--config.seeds='0.5'", "integers"),
    ({"ballot__pruning": "autoo"}, "--config.ballot.pruning='autoo'", "'auto', 'iterative', 'one_shot'"),
    ({"ballot__selection": "votes"}, "--config.ballot.selection='votes'", "'conflict', 'magnitude', 'vote'"),
    ({"ballot__rewind_selection": "lth"}, "--config.ballot.rewind_selection='lth'", "'conflict', 'magnitude', 'vote'"),
    ({"ballot__mu_rule": "largest"}, "--config.ballot.mu_rule='largest'", "'fairest', 'strongest'"),
    ({"ballot__mode_rule": "fairest"}, "--config.ballot.mode_rule='fairest'", "'accurate', 'fairer_within_epsilon'"),
    ({"ballot__epsilon_reference": "lth"}, "--config.ballot.epsilon_reference='lth'", "'dense', 'ticket'"),
    ({"ballot__disparity_alternatives": ("worst_groups",)}, "--config.ballot.disparity_alternatives=('worst_groups',)",
     "a tuple of disparities from 'dp', 'eo', 'loss_var', 'worst_cell', 'worst_group'"),
    ({"ballot__disparity_alternatives": ("worst_group",), "ballot__disparity_weights": ()},
     "--config.ballot.disparity_alternatives=('worst_group',)", "() when disparity_weights is empty"),
    ({"ballot__disparity_decay": 0.0}, "--config.ballot.disparity_decay=0.0", "a number in (0, 1]"),
    ({"ballot__disparity_decay": 0.1, "ballot__disparity": "loss_var"}, "--config.ballot.disparity_decay=0.1",
     "1 unless disparity is 'worst_cell' or 'worst_group'"),
    ({"ballot__adversary_balance": "classes"}, "--config.ballot.adversary_balance='classes'", "'examples', 'groups'"),
    ({"ballot__epsilon_floor": "wide"}, "--config.ballot.epsilon_floor='wide'", "'none', 'split_se'"),
    ({"ballot__distill": -1.0}, "--config.ballot.distill=-1.0", "a number >= 0"),
    ({"ballot__distill": 1.0, "ballot__refine": "polish"}, "--config.ballot.distill=1.0", "refine='retrain'"),
    ({"ballot__distill_temperature": 0.0}, "--config.ballot.distill_temperature=0.0", "a number > 0"),
    ({"ballot__distill_teacher": "lth"}, "--config.ballot.distill_teacher='lth'", "'dense', 'ticket'"),
    ({"ballot__distill_groups": "worst"}, "--config.ballot.distill_groups='worst'", "'all', 'above_mean'"),
    ({"ballot__distill": 1.0, "ballot__distill_teacher": "ticket", "ballot__disparity_weights": (0.3, 1.0)},
     "--config.ballot.distill_teacher='ticket'", "disparity_weights starting with 0"),
    ({"ballot__adversary_reach": "worst"}, "--config.ballot.adversary_reach='worst'", "'all', 'below_mean'"),
    ({"ballot__adversary_reach": "below_mean", "ballot__disparity": "worst_cell"},
     "--config.ballot.adversary_reach='below_mean'", "disparity='adversary'"),
    ({"ballot__adversary_reach": "below_mean", "ballot__disparity_weights": (0.3, 1.0)},
     "--config.ballot.adversary_reach='below_mean'", "disparity_weights starting with 0"),
    ({"ballot__vote_kind": "signed"}, "--config.ballot.vote_kind='signed'", "'authors', 'saliency', 'conflict'"),
    ({"fraction": 0.0}, "--config.fraction=0.0", "(0, 1)"),
    ({"ballot__balanced_sampling": True, "train__batch_size": 84}, "--config.ballot.balanced_sampling=True",
     "10 groups"),
    ({"ballot__per_group_batch": 6}, "--config.ballot.per_group_batch=6", "number of devices (4)"),
    ({"safecompress__preset": "ours", "safecompress__fairness_metric": "demographic_parity_difference"},
     "--config.safecompress.fairness_metric", "needs binary targets"),
    ({"methods": "dense,lth,ballot", "ballot__score_split": "val", "ballot__selection": "conflict",
      "ballot__pruning": "one_shot", "ballot__disparity_weights": (0.0,), "data__val_fraction": 0.0},
     "--config.ballot: Ballot reads the validation split for score_split='val'", "(the split's size: --config.data.val_fraction)"),
    ({"magnitude__finetune_steps": -3}, "--config.magnitude.finetune_steps=-3", "None (the iterative budget) or >= 1"),
    ({"model": "resnet18"}, "--config.model_kwargs.hidden=(128, 128)", "it takes conv_impl, norm, stage_sizes, stem, width"),
])
def test_each_problem_names_its_field_and_what_it_accepts(tmp_path, overrides, field, accepted):
    with pytest.raises(run.ConfigError) as err:
        run.run_experiment(bad_config(**overrides), tmp_path / "w")
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(field), err.value.problems
    assert accepted in err.value.problems[0]
    assert_unbound(tmp_path / "w")


def test_a_method_option_problem_names_the_option_that_caused_it():
    """Options a method's constructor rejects are found one by one (in field order), each named."""
    problems = run.config_problems(bad_config(
        safecompress__preset="ours", safecompress__fairness_metric="bogus", safecompress__acc_tolerance=-1.0))
    assert [p.split(":")[0] for p in problems] == [
        "--config.safecompress.fairness_metric='bogus'", "--config.safecompress.acc_tolerance=-1.0"]


def test_the_shipped_dataset_configs_have_no_problem():
    names = [m.name for m in pkgutil.iter_modules([str(REPO / "experiments")])]
    modules = [importlib.import_module(f"experiments.{name}") for name in names]
    configs = {m.__name__: m.get_config() for m in modules if hasattr(m, "get_config")}
    assert {"experiments.digits", "experiments.celeba", "experiments.cifar10"} <= set(configs)
    for name, config in configs.items():
        assert run.config_problems(config) == [], name


def test_bad_option_on_the_command_line_exits_at_once_with_one_message(tmp_path, cli_env):
    workdir = tmp_path / "w"
    proc, seconds = run_cli(digits_cmd(workdir, "--config.ballot.lr=rewnd"), cli_env)
    print(f"bad option: exit {proc.returncode} after {seconds:.1f}s")
    assert_one_message(proc, "--config.ballot.lr='rewnd'", "'rewind', 'warmup_cosine'")
    assert seconds < 30, "validation must fail before any training"
    assert_unbound(workdir)


# --------------------------------------------------------------------------------------------------
# 2. One run per workdir


def test_a_second_run_on_the_same_workdir_fails_at_once_naming_the_holder(tmp_path, cli_env):
    workdir = tmp_path / "w"
    holder = subprocess.Popen(
        digits_cmd(workdir, *TINY, "--config.methods=dense", "--config.train.steps=1000000",
                   "--config.train.checkpoint_every=0"),
        cwd=REPO, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while f'"pid": {holder.pid}' not in ((workdir / ".lock").read_text() if (workdir / ".lock").exists() else ""):
            assert holder.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.1)
        proc, seconds = run_cli(digits_cmd(workdir, *TINY), cli_env)
        print(f"second run: exit {proc.returncode} after {seconds:.1f}s")
        assert_one_message(proc, f"{workdir} is in use by another run", f"PID {holder.pid}",
                           f"host {socket.gethostname()}")
        assert seconds < 30
        assert holder.poll() is None, "the second run must not disturb the first"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the dead run's lock; its file still names it: taken over, with a log line.
    assert f'"pid": {holder.pid}' in (workdir / ".lock").read_text()
    with run.workdir_lock(workdir):
        assert f'"pid": {os.getpid()}' in (workdir / ".lock").read_text()
        with pytest.raises(run.WorkdirLockedError, match=f"PID {os.getpid()} on host"):
            with run.workdir_lock(workdir):
                pass
    assert (workdir / ".lock").read_text() == "", "a finished run leaves no holder behind"


def test_a_stale_lock_is_taken_over_with_a_log_line(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then"}))
    with run.workdir_lock(workdir):
        pass
    assert f"taking over the stale lock of PID {dead.pid}" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# 3. Checksummed artefacts


def small_tree():
    return {"w": jnp.arange(4096.0).reshape(64, 64), "b": jnp.ones(7, jnp.int32)}


def saved_item(path: pathlib.Path) -> pathlib.Path:
    checkpoints.save_item(path, small_tree())
    return path


def item_files(path: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_an_item_is_sealed_with_the_checksums_of_all_its_files(tmp_path):
    item = saved_item(tmp_path / "item")
    sums = json.loads((item / checkpoints.MANIFEST).read_text())["files"]
    assert sorted(sums) == [f for f in item_files(item) if f != checkpoints.MANIFEST]
    assert checkpoints.LEAVES in sums, "the array data is covered"
    chex.assert_trees_all_equal(checkpoints.load_item(item, small_tree()), small_tree())


def test_an_item_round_trips_exactly_with_its_leaf_kinds_and_shardings(tmp_path):
    """Raw leaves (one process, plain arrays): bf16, ints, 0-d arrays, NumPy leaves, Python scalars
    and None nodes come back bit for bit, each leaf as the kind the template has, jax.Arrays with the
    template's sharding (here replicated over 4 devices); the template's shapes and dtypes are checked."""
    mesh = data_mesh(jax.devices()[:4])
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    tree = {"w": jax.device_put(jnp.linspace(-1, 1, 12, dtype=jnp.bfloat16).reshape(3, 4), replicated),
            "step": jnp.int32(7), "mask": {"a": jnp.array([True, False]), "b": None},
            "host": np.arange(5, dtype=np.int64), "lr": 0.125}
    checkpoints.save_item(tmp_path / "item", tree)
    assert (tmp_path / "item" / checkpoints.LEAVES_INDEX).is_file()
    assert not (tmp_path / "item.saving").exists()
    back = checkpoints.load_item(tmp_path / "item", tree)
    chex.assert_trees_all_equal(back, tree)
    assert back["w"].dtype == jnp.bfloat16 and back["w"].sharding == replicated
    assert isinstance(back["host"], np.ndarray) and back["lr"] == 0.125 and back["mask"]["b"] is None
    checkpoints.save_item(tmp_path / "item", {**tree, "step": jnp.int32(8)})  # overwritten in place
    assert int(checkpoints.load_item(tmp_path / "item", tree)["step"]) == 8
    for other in ({**tree, "w": tree["w"].astype(jnp.float32)}, {**tree, "host": np.arange(6)}, {"w": tree["w"]}):
        with pytest.raises(checkpoints.CheckpointMismatchError, match="does not match this run"):
            checkpoints.load_item(tmp_path / "item", other)


def test_orbax_items_of_earlier_versions_and_key_leaves_still_load(tmp_path):
    """Items written with Orbax (every version before session 7, and still any tree with typed PRNG
    keys or leaves this process does not hold) load as before, with or without a template."""
    import orbax.checkpoint as ocp

    old = tmp_path / "old"
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(old.absolute(), small_tree())
    checkpoints._seal(old)
    chex.assert_trees_all_equal(checkpoints.load_item(old, small_tree()), small_tree())
    np.testing.assert_array_equal(sorted(a.size for a in checkpoints.read_leaves(old)), [7, 4096])
    keyed = {"key": jax.random.key(3), "w": jnp.ones(3)}
    checkpoints.save_item(tmp_path / "keyed", keyed)
    assert not (tmp_path / "keyed" / checkpoints.LEAVES_INDEX).exists()  # written by Orbax
    back = checkpoints.load_item(tmp_path / "keyed", keyed)
    np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(keyed["key"]))
    new = saved_item(tmp_path / "new")
    np.testing.assert_array_equal(checkpoints.read_leaves(new)[1], small_tree()["w"])


def test_an_item_with_a_leaf_no_checkpoint_can_hold_is_refused_when_saved_not_when_read(tmp_path):
    """A string leaf (or an object or bytes array) is not written as raw leaves, to fail only on
    reading: it is refused at save time, naming the leaf, before Orbax starts (a save Orbax refuses
    leaves a background thread that can collide with the next save: seen once under Python 3.13),
    and nothing is left behind."""
    for odd in ("abc", b"abc", np.array(["a", "b"]), np.array([b"a"]), np.array([object()], dtype=object)):
        with pytest.raises(ValueError, match=r"Unsupported type for a checkpoint leaf at \['odd'\]"):
            checkpoints.save_item(tmp_path / "item", {"w": jnp.ones(3), "odd": odd})
        assert not checkpoints.item_exists(tmp_path / "item")
        assert list(tmp_path.iterdir()) == []


def test_flipping_8_bytes_in_any_file_of_an_item_is_one_clear_error(tmp_path):
    reference = saved_item(tmp_path / "reference")
    for name in item_files(reference):
        item = tmp_path / "item"
        shutil.rmtree(item, ignore_errors=True)
        shutil.copytree(reference, item)
        flip_bytes(item / name)
        with pytest.raises(checkpoints.CorruptArtefactError) as err:
            checkpoints.load_item(item, small_tree())
        assert str(item) in str(err.value) and "Delete it and run the same command again" in str(err.value), name
        assert isinstance(err.value, checkpoints.CheckpointMismatchError)


def test_a_truncated_or_unsealed_item_is_an_error_and_an_unsealed_one_is_not_finished(tmp_path):
    item = saved_item(tmp_path / "item")
    data = item / checkpoints.LEAVES
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(checkpoints.CorruptArtefactError, match="does not match its checksum"):
        checkpoints.load_item(item, small_tree())
    item = saved_item(tmp_path / "unsealed")
    (item / checkpoints.MANIFEST).unlink()
    assert not checkpoints.item_exists(item), "a save killed before its manifest is not finished"
    with pytest.raises(checkpoints.CorruptArtefactError, match="no SHA256SUMS.json"):
        checkpoints.load_item(item, small_tree())
    checkpoints.save_item(item, small_tree())  # saved again, it is whole
    assert checkpoints.item_exists(item)
    chex.assert_trees_all_equal(checkpoints.load_item(item, small_tree()), small_tree())


def test_a_damaged_record_is_one_clear_error(tmp_path):
    path = tmp_path / "record.json"
    checkpoints.write_json(path, {"accuracy": 0.5, "levels": [1, 2]})
    assert checkpoints.read_json(path) == {"accuracy": 0.5, "levels": [1, 2]}
    good = path.read_bytes()
    for damage in (flip_bytes, lambda p: p.write_bytes(good[: len(good) // 2]),
                   lambda p: p.write_text(good.decode().replace("0.5", "0.6"))):
        path.write_bytes(good)
        damage(path)
        with pytest.raises(checkpoints.CorruptArtefactError, match=f"{path} is damaged .*Delete it"):
            checkpoints.read_json(path)
    path.write_text(json.dumps({"accuracy": 0.5}))  # no checksum: not written by write_json
    with pytest.raises(checkpoints.CorruptArtefactError, match="no '_sha256' checksum"):
        checkpoints.read_json(path)


def test_periodic_checkpoints_are_verified_and_an_unsealed_step_is_dropped(tmp_path, capfd):
    periodic = checkpoints.Periodic(tmp_path / "ckpt")
    for step in (5, 10):
        periodic.save(step, small_tree())
    step_dir = tmp_path / "ckpt" / "10"
    data = next(p for p in step_dir.rglob("*") if p.is_file() and "/d/" in p.as_posix())
    good = data.read_bytes()
    flip_bytes(data)  # damaged after the manager was opened: restore checks it
    with pytest.raises(checkpoints.CorruptArtefactError, match=f"{step_dir} is damaged"):
        periodic.restore(10, small_tree())
    periodic.close()
    data.write_bytes(good)
    capfd.readouterr()
    for name in item_files(step_dir):  # damaged before: found before Orbax reads any of it
        good = (step_dir / name).read_bytes()
        flip_bytes(step_dir / name)
        with pytest.raises(checkpoints.CorruptArtefactError, match=f"{step_dir} is damaged"):
            checkpoints.Periodic(tmp_path / "ckpt")
        (step_dir / name).write_bytes(good)
    assert capfd.readouterr().err == "", "Orbax must not read (and complain about) a damaged file"
    (step_dir / checkpoints.MANIFEST).unlink()  # killed before the manifest
    periodic = checkpoints.Periodic(tmp_path / "ckpt")
    assert periodic.latest_step() == 5 and not step_dir.exists()
    assert "unfinished periodic checkpoint" in capfd.readouterr().err
    chex.assert_trees_all_equal(periodic.restore(5, small_tree()), small_tree())
    periodic.close()


class Killed(RuntimeError):
    pass


CRASH_CFG = TrainConfig(steps=20, batch_size=16, learning_rate=0.1, rewind_step=2, checkpoint_every=5)


# Seals in order: rewind point (1), periodic 5/10/15 (2-4), dense final (5), level-1 mask (6), ...
@pytest.mark.parametrize("killed_at", [1, 3, 6])
def test_a_kill_between_the_save_and_its_manifest_resumes_bit_identically(tmp_path, monkeypatch, killed_at):
    task = Task(mlp_model(), toy_dataset(), data_mesh(jax.devices()[:1]))

    def magnitude(state, level):
        return bj.magnitude_scores(state.params, state.mask)

    reference = run_levels(task, CRASH_CFG, magnitude, LevelPlan([100]), tmp_path / "ref")
    seal, calls = checkpoints._seal, []

    def killing_seal(directory):
        calls.append(directory)
        if len(calls) == killed_at:
            raise Killed(f"killed after the arrays were written to {directory}, before its manifest")
        seal(directory)

    monkeypatch.setattr(checkpoints, "_seal", killing_seal)
    with pytest.raises(Killed):
        run_levels(task, CRASH_CFG, magnitude, LevelPlan([100]), tmp_path / "run")
    assert calls[-1].is_dir() and not (calls[-1] / checkpoints.MANIFEST).exists()
    monkeypatch.setattr(checkpoints, "_seal", seal)
    resumed = run_levels(task, CRASH_CFG, magnitude, LevelPlan([100]), tmp_path / "run")
    for a, b in zip(reference, resumed):
        assert (a["kept"], a["val"], a["test"]) == (b["kept"], b["val"], b["test"])  # bit-identical on CPU
    state = init_state(task, CRASH_CFG)
    for name, like in (("level_00/rewind", state), ("level_01/mask", state.mask), ("level_01/final", state)):
        chex.assert_trees_all_equal(checkpoints.load_item(tmp_path / "ref" / name, like),
                                    checkpoints.load_item(tmp_path / "run" / name, like))


def test_a_damaged_record_or_checkpoint_stops_the_command_with_one_message(finished, tmp_path, cli_env):
    workdir = copy_of(finished, tmp_path)
    flip_bytes(workdir / "seed_0" / "dense.record.json")
    proc, _ = run_cli(digits_cmd(workdir, *TINY), cli_env)
    assert_one_message(proc, f"{workdir / 'seed_0' / 'dense.record.json'} is damaged", "Delete it")

    # The data file of the shared dense model, read when magnitude runs again.
    shutil.rmtree(workdir)
    workdir = copy_of(finished, tmp_path)
    (workdir / "seed_0" / "sparsity_0.5" / "magnitude.record.json").unlink()
    final = workdir / "seed_0" / "dense" / "final"
    flip_bytes(final / checkpoints.LEAVES)
    proc, _ = run_cli(digits_cmd(workdir, *TINY), cli_env)
    assert_one_message(proc, f"{final} is damaged", "Delete it and run the same command again")
    # As the message says: delete it, run the same command, and that part is redone.
    shutil.rmtree(final)
    proc, _ = run_cli(digits_cmd(workdir, *TINY), cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert records_by_method(workdir) == records_by_method(finished)


def test_a_killed_run_resumes_to_the_same_results(finished, tmp_path, cli_env):
    workdir = tmp_path / "w"
    sealed = workdir / "seed_0" / "dense" / "final" / checkpoints.MANIFEST
    proc = subprocess.Popen(digits_cmd(workdir, *TINY), cwd=REPO, env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not sealed.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sealed.exists(), "the run never finished its dense phase"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (workdir / "results.json").exists(), "killed before it finished"
    again, _ = run_cli(digits_cmd(workdir, *TINY), cli_env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert records_by_method(workdir) == records_by_method(finished)


# --------------------------------------------------------------------------------------------------
# 4. Library input errors


def params_and_mask():
    params = {"a": {"kernel": jnp.arange(12.0).reshape(3, 4) - 5}, "b": {"bias": jnp.ones(4)}}
    return params, bj.make_mask(params)


def test_apply_mask_and_mask_overlap_refuse_mismatched_trees():
    params, mask = params_and_mask()
    with pytest.raises(ValueError, match="mask tree structure differs from params"):
        bj.apply_mask(params, {"a": mask["a"]})
    with pytest.raises(ValueError, match="has shape"):
        bj.apply_mask(params, {**mask, "a": {"kernel": jnp.ones((4, 3), bool)}})
    with pytest.raises(ValueError, match="tree structures differ"):
        bj.mask_overlap(mask, {"a": mask["a"]})
    with pytest.raises(ValueError, match=r"\['b'\]\['bias'\] differs"):
        bj.mask_overlap(mask, {**mask, "b": {"bias": jnp.ones(4, bool)}})
    assert float(bj.mask_overlap(mask, mask)) == 1.0


@pytest.mark.parametrize("fraction", [np.float32(0.5), np.float64(0.5), np.array(0.5), jnp.asarray(0.5), 0.5])
def test_prune_takes_any_real_number(fraction):
    params, mask = params_and_mask()
    scores = bj.magnitude_scores(params, mask)
    chex.assert_trees_all_equal(bj.prune(scores, mask, fraction), bj.prune(scores, mask, 0.5))
    chex.assert_trees_all_equal(bj.prune_to_sparsity(scores, mask, fraction), bj.prune_to_sparsity(scores, mask, 0.5))


def test_nan_weights_raise_naming_the_leaf():
    params, mask = params_and_mask()
    params["a"]["kernel"] = params["a"]["kernel"].at[1, 2].set(jnp.nan)
    scores = bj.magnitude_scores(params, mask)
    for prune in (lambda **kw: bj.prune(scores, mask, 0.5, **kw),
                  lambda **kw: bj.prune_to_sparsity(scores, mask, 0.5, **kw),
                  lambda **kw: bj.prune_to_count(scores, mask, 6, **kw)):
        with pytest.raises(ValueError, match=r"NaN scores at alive weights of \['a'\]\['kernel'\]"):
            prune()
        assert int(bj.num_kept(prune(allow_nan=True))) == 6  # documented opt-out: NaN ranks lowest
    pruned = {"a": {"kernel": jnp.ones((3, 4), bool).at[1, 2].set(False)}, "b": {"bias": None}}
    assert int(bj.num_kept(bj.prune(scores, pruned, 0.5))) == 11 - round(0.5 * 11)  # NaN at a pruned weight: harmless


def test_ballot_prune_names_the_nan_leaf_or_group_and_refuses_mismatched_trees():
    params, mask = params_and_mask()
    grads = jax.tree.map(lambda p: jnp.stack([jnp.ones_like(p), -jnp.ones_like(p)]), params)
    gg = GroupGrads(grads, jax.tree.map(jnp.square, grads), jnp.array([0.2, 1.0]), jnp.array([0.9, 0.6]))
    assert int(bj.num_kept(ballot.prune(params, mask, gg, 0.5))) == 6
    with pytest.raises(ValueError, match=r"NaN group loss for group\(s\) \[1\]"):
        ballot.prune(params, mask, gg._replace(loss=jnp.array([0.2, jnp.nan])), 0.5)
    bad = {**params, "a": {"kernel": params["a"]["kernel"].at[0, 0].set(jnp.nan)}}
    with pytest.raises(ValueError, match=r"NaN weights at alive weights of \['a'\]\['kernel'\]"):
        ballot.prune(bad, mask, gg, 0.5)
    with pytest.raises(ValueError, match="mask tree structure differs from params"):
        ballot.prune(params, {"a": mask["a"]}, gg, 0.5)


def image_zip(path: pathlib.Path) -> bytes:
    """A tiny CIFAR-style zip (train/test, two classes of three PNGs); its bytes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for split in ("train", "test"):
            for label in ("cat", "dog"):
                for i in range(3):
                    png = io.BytesIO()
                    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(png, "PNG")
                    z.writestr(f"{split}/{label}/{i}.png", png.getvalue())
    return path.read_bytes()


def test_a_truncated_or_damaged_zip_is_named_as_such(tmp_path):
    good = image_zip(tmp_path / "good.zip")
    assert load_dataset("cifar10", data_dir=str(tmp_path / "good.zip"), val_fraction=0.34).info.num_classes == 2
    truncated = tmp_path / "data.bin"  # no .zip name: recognised by its first bytes
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(DamagedArchiveError, match="is a damaged zip archive.*copy it again"):
        load_dataset("cifar10", data_dir=str(truncated))
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(good[:200] + bytes(b ^ 0xFF for b in good[200:208]) + good[208:])
    with pytest.raises(DamagedArchiveError, match=r"damaged zip archive \(reading train/cat/0.png\)"):
        load_dataset("cifar10", data_dir=str(damaged))


# --------------------------------------------------------------------------------------------------
# 5. Every model's constructor options from the command line


def test_every_option_of_every_model_is_in_the_config():
    kwargs = digits.get_config().model_kwargs
    for name, cls in MODELS.items():
        assert set(run._model_fields(cls)) <= set(kwargs), name


def parsed(get_config, *args: str):
    """The config ``get_config()`` with command-line ``args`` applied, and the fields they set."""
    from absl import flags

    values = flags.FlagValues()  # config_flags defines the overridden fields' flags from sys_argv
    config_flags.DEFINE_config_dict("config", get_config(), flag_values=values, sys_argv=["prog", *args])
    values(["prog", *args])
    return values.config, config_flags.get_override_values(values["config"])


def test_model_options_from_the_command_line_reach_the_chosen_model():
    config, overrides = parsed(cifar10.get_config, "--config.model=resnet18",
                               "--config.model_kwargs.stem=imagenet", "--config.model_kwargs.width=8")
    run.unset_foreign_model_kwargs(config, overrides)
    assert run.model_kwargs(config) == {"stem": "imagenet", "width": 8}
    assert isinstance(run.model_kwargs(config)["width"], int)
    assert run.config_problems(config) == []

    # The dataset config's option for its own model is unset for another one; the user's is an error.
    config, overrides = parsed(cifar100.get_config, "--config.model=resnet18")
    run.unset_foreign_model_kwargs(config, overrides)
    assert config.model_kwargs.dense is None and run.model_kwargs(config) == {}
    config, overrides = parsed(cifar100.get_config, "--config.model=resnet18", "--config.model_kwargs.dense=64")
    run.unset_foreign_model_kwargs(config, overrides)
    with pytest.raises(run.ConfigError, match=r"--config.model_kwargs.dense=64: model 'resnet18' does not take it; "
                                              r"it takes conv_impl, norm, stage_sizes, stem, width"):
        run.model_kwargs(config)


def test_saved_configs_compare_by_the_model_actually_built():
    current = run.config_to_json(digits.get_config())
    older = {**current, "model_kwargs": {"hidden": [128, 128]}}  # before every model's options were listed
    assert run.config_differences(older, current) == []
    other = {**current, "model_kwargs": {**current["model_kwargs"], "hidden": [64]}}
    assert run.config_differences(other, current) == ["model_kwargs.hidden: [64] (saved) != [128, 128] (now)"]


def test_a_workdir_from_before_an_option_changed_the_method_is_not_resumed_silently():
    """A saved config without ``ballot.rewind_selection`` ran Ballot's rewinding mode with the vote,
    one without ``ballot.mu_rule`` chose the fairest admissible μ, one without
    ``ballot.epsilon_reference`` held μ to the dense model's accuracy: resuming any with today's
    defaults (|w|, the strongest μ of the admissible prefix, the ticket's accuracy) would mix two
    methods in one workdir, so each is a difference that names the option; asking for the old values
    resumes it. So is one of sessions 7-29, saved with the largest admissible μ ("strongest")."""
    current = run.config_to_json(digits.get_config())
    legacy = {"rewind_selection": "vote", "mu_rule": "fairest", "epsilon_reference": "dense"}
    older = {**current, "ballot": {k: v for k, v in current["ballot"].items() if k not in legacy}}
    assert run.config_differences(older, current) == [
        "ballot.epsilon_reference: 'dense' (saved) != 'ticket' (now)",
        "ballot.mu_rule: 'fairest' (saved) != 'strongest_prefix' (now)",
        "ballot.rewind_selection: 'vote' (saved) != 'magnitude' (now)"]
    assert run.config_differences(older, {**current, "ballot": {**current["ballot"], **legacy}}) == []
    # saved in sessions 7-29: only Ballot's own rule differs (the authors' preset has no μ search and kept its value)
    c12 = {**current, "ballot": {**current["ballot"], "mu_rule": "strongest"},
           "ballot_authors": {**current["ballot_authors"], "mu_rule": "strongest"}}
    assert run.config_differences(c12, current) == ["ballot.mu_rule: 'strongest' (saved) != 'strongest_prefix' (now)"]
    no_ballot = {k: v for k, v in current.items() if k != "ballot"}  # a method that could not be imported then
    assert run.config_differences(no_ballot, current) == []
