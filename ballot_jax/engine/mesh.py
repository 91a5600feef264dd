"""Devices, the 'data' mesh, and placing host batches on it (single- and multi-host)."""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from ballot_jax.tracing import is_traced

DATA_AXIS = "data"
PyTree = Any


def maybe_initialize_distributed() -> bool:
    """Call ``jax.distributed.initialize()`` when launched as one of several processes.

    Detects the usual launchers (explicit ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/
    ``JAX_PROCESS_ID``, SLURM, TPU pods where JAX auto-detects). Returns True if initialised.
    Must run before any other JAX call in the process.
    """
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
        return True
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 or os.environ.get("TPU_WORKER_HOSTNAMES"):
        jax.distributed.initialize()
        return True
    return False


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of all processes) with an Auto 'data' axis.

    Auto (not Explicit) axis types: ``vmap`` of ``grad`` over conv nets fails under Explicit sharding.
    """
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that replicates an array on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """``tree`` with every array replicated on ``mesh`` (a no-op for arrays already placed so).

    A phase must start from a state placed exactly as its sharded step expects: an array left on
    one device (e.g. a fresh optimizer count or step made by ``jnp.zeros`` outside the mesh) makes
    the step reshard it on every call, and on multi-device CPU that resharding can leave one device
    out of the step's first all-reduce until XLA aborts.

    Only the leaves not already on exactly that sharding go through ``jax.device_put``: a phase
    starts by replicating a state that is usually placed already, and ``device_put`` of the whole
    tree cost ~0.7 ms of host time per call for the 18 leaves of a small model's state
    (``benchmarks.loop``, docs/speed_notes.md §4).
    """
    target = replicated(mesh)
    leaves, treedef = jax.tree.flatten(tree)
    # a tracer (replicate inside jit) has no concrete sharding: device_put places it in the trace
    todo = [i for i, x in enumerate(leaves)
            if is_traced(x) or not (isinstance(x, jax.Array) and x.sharding == target)]
    if not todo:
        return tree
    placed = jax.device_put([leaves[i] for i in todo], target)
    for i, x in zip(todo, placed):
        leaves[i] = x
    return jax.tree.unflatten(treedef, leaves)


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Sharding that splits dimension ``axis`` of an array over the 'data' axis."""
    return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh, what: str = "batch size") -> None:
    """Raise ``ValueError`` unless ``batch_size`` splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"{what} {batch_size} must be divisible by the number of devices ({n})")


def put_batch(batch: PyTree, mesh: Mesh, axis: int = 0) -> PyTree:
    """Place a *global* host batch on ``mesh``, split along ``axis``.

    Single process: the whole batch is on this host. Multi-process: every process holds the same
    global batch (indices are a pure function of seed and step) and contributes only its own slice,
    via ``jax.make_array_from_process_local_data``; no process ever transfers the others' rows.
    """
    sharding = batch_sharding(mesh, axis)
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)

    def local(x: np.ndarray) -> jax.Array:
        # The rows this process's devices hold, read off the sharding (not assumed to be the
        # process_index-th block: a mesh may order devices otherwise), in ascending order, which
        # is how make_array_from_process_local_data lays a process's slices out in its local data.
        spans = {
            idx[axis].indices(x.shape[axis])[:2]
            for idx in sharding.addressable_devices_indices_map(x.shape).values()
        }
        rows = np.concatenate([np.arange(start, stop) for start, stop in sorted(spans)])
        return jax.make_array_from_process_local_data(sharding, np.take(x, rows, axis=axis), x.shape)

    return jax.tree.map(local, batch)


def to_host(x: PyTree) -> PyTree:
    """Fetch (possibly multi-host sharded) arrays as NumPy on every process."""
    if jax.process_count() == 1:
        return jax.device_get(x)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(x, tiled=True)
