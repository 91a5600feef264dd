"""Multi-host: 2 processes x 2 CPU devices (gloo collectives over 127.0.0.1) train like 1 process x 4.

The workers (``multihost_worker.py``) run under the launcher variables that
``maybe_initialize_distributed`` reads; this process, with the 4 CPU devices of ``conftest.py``,
computes the single-process reference with the same functions.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import multihost_worker as worker
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import init_state
from ballot_jax.engine.mesh import data_mesh

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
NUM_PROCESSES, DEVICES_PER_PROCESS = 2, 2
TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out_prefix: pathlib.Path, workdir: pathlib.Path) -> list[tuple[subprocess.Popen, pathlib.Path]]:
    """Start the worker as ``NUM_PROCESSES`` processes; ``(process, log file)`` for each."""
    port = free_port()
    procs, logs = [], []
    for i in range(NUM_PROCESSES):
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}",
            "JAX_PLATFORMS": "cpu",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": str(NUM_PROCESSES),
            "JAX_PROCESS_ID": str(i),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        logs.append(pathlib.Path(f"{out_prefix}.log{i}"))
        with open(logs[-1], "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(TESTS / "multihost_worker.py"), str(out_prefix), str(workdir)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            ))
    return list(zip(procs, logs))


def finish(launched: list[tuple[subprocess.Popen, pathlib.Path]], started: float) -> None:
    """Wait for the workers; fail (never hang, never skip) if any fails or ``TIMEOUT_S`` passes.

    As soon as one process fails the others are killed (they would wait for it until the timeout).
    """
    procs, logs = [p for p, _ in launched], [log for _, log in launched]
    deadline = started + TIMEOUT_S
    failures = []
    try:
        while any(p.poll() is None for p in procs) and not failures:
            failures = [f"process {i} exited with {p.returncode}" for i, p in enumerate(procs) if p.poll()]
            if time.monotonic() > deadline:
                failures.append(f"timed out after {TIMEOUT_S}s")
            time.sleep(0.1)
        failures = failures or [f"process {i} exited with {p.returncode}" for i, p in enumerate(procs) if p.poll()]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    if failures:
        tails = "\n".join(f"--- process {i} output (tail) ---\n{log.read_text()[-4000:]}" for i, log in enumerate(logs))
        pytest.fail(
            "multi-process CPU run failed (jax.distributed over 127.0.0.1 with gloo collectives): "
            f"{'; '.join(failures)}\n{tails}"
        )


def assert_close(actual, expected, rtol=1e-5, atol=1e-6):
    """Nested dicts/lists of numbers (as JSON would hold them) equal in structure and close in value."""
    actual, expected = json.loads(json.dumps(actual)), json.loads(json.dumps(expected))
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def without_times(records):
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in records]


def test_two_processes_match_one_process_four_devices(tmp_path):
    assert len(jax.devices()) >= 4, "conftest sets 4 CPU devices"
    workdir = tmp_path / "shared"
    started = time.monotonic()
    launched = launch(tmp_path / "out", workdir)
    try:
        # Reference, while the workers run: one process, 4 devices, the same code.
        mesh = data_mesh(jax.devices()[:4])
        ref_losses, _, ref_trainer, ref_state = worker.train_losses(mesh)
        ref_metrics = worker.test_metrics(ref_trainer, ref_state)
        ref_levels = worker.levels(mesh, tmp_path / "ref_levels")
    except BaseException:
        for p, _ in launched:
            p.kill()
            p.wait()
        raise
    finish(launched, started)
    results = [json.loads((tmp_path / f"out.{i}").read_text()) for i in range(NUM_PROCESSES)]

    for i, r in enumerate(results):
        assert r["initialized"] and r["process_index"] == i and r["process_count"] == NUM_PROCESSES
        assert r["global_devices"] == NUM_PROCESSES * DEVICES_PER_PROCESS
        assert r["local_devices"] == DEVICES_PER_PROCESS

        # Same loss curve, whatever the order of the devices in the mesh.
        assert len(r["losses"]) == worker.STEPS
        np.testing.assert_allclose(r["losses"], ref_losses, rtol=1e-5)
        np.testing.assert_allclose(r["losses_interleaved"], ref_losses, rtol=1e-5)
        assert_close(r["loop_params"], worker.host_tree(ref_state.params))
        assert_close(r["trained_params"], r["loop_params"], rtol=1e-6, atol=1e-7)

        # Batches keep their row order on a mesh whose devices alternate between processes, and
        # evaluation gathers predictions in row order on every process (on both meshes).
        assert r["rows_round_trip_interleaved"], "put_batch scrambled rows on an interleaved mesh"
        for key in ("test_metrics", "test_metrics_interleaved"):
            assert_close(r[key], ref_metrics)

        # Each process fed only its own slice: half the rows, as its 2 devices' 2 shards.
        batch = worker.config().batch_size
        per_device = batch // (NUM_PROCESSES * DEVICES_PER_PROCESS)
        for fed in r["fed"]:
            for leaf in fed.values():
                assert leaf["global_shape"][0] == batch
                shards = leaf["local_shards"]
                assert [s["shape"][0] for s in shards] == [per_device] * DEVICES_PER_PROCESS
                rows = sorted(row for s in shards for row in range(*s["rows"]))
                assert rows == list(
                    range(i * batch // NUM_PROCESSES, (i + 1) * batch // NUM_PROCESSES)
                )

        # The pruning levels (checkpoints, masks, evaluation) give the single-process records.
        assert_close(without_times(r["levels"]), without_times(ref_levels))

    # Both processes restored the same item, equal to what was trained.
    for r in results:
        assert r["restored_params"] == results[0]["trained_params"]

    # Checkpoints were written once, completely, in the shared directory, and read back here.
    leftovers = [p for p in workdir.rglob("*") if "tmp" in p.name.lower()]
    assert not leftovers, f"unfinished checkpoint or record writes left behind: {leftovers}"
    assert sorted(p.name for p in (workdir / "ckpt").iterdir()) == ["10", "5"]
    like = init_state(ref_trainer.task, worker.config())
    assert worker.host_tree(checkpoints.load_item(workdir / "final", like).params) == results[0]["trained_params"]
    assert sorted(p.name for p in (workdir / "levels" / "level_01").iterdir()) == ["ckpt", "final", "mask", "record.json"]
    assert without_times([checkpoints.read_json(workdir / "levels" / f"level_{k:02d}" / "record.json") for k in (0, 1)]) \
        == without_times(results[0]["levels"])
