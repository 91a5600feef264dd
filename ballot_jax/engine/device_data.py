"""The training set on the devices: batches gathered where the step runs.

A training set of at most ``DEVICE_DATA_MAX_BYTES`` is placed on the mesh once per process
(replicated); each training step then gathers its batch there from indices the host draws
(``Trainer.batch_indices``: a pure function of seed and step), in the same jitted call as the step.
The host never copies rows on the critical path, and the rows are the same, bit for bit, as the
host gather's. The indices themselves may be passed as a host NumPy array: the jitted call places
them with the batch sharding it declares, in its C++ dispatch path (~15 us a call, against ~100 us
for an explicit ``jax.device_put`` to the same sharding). Larger sets keep the host gather +
transfer (``put_batch``).
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh

from ballot_jax import compiler
from ballot_jax.engine.mesh import batch_sharding, replicate

DEVICE_DATA_MAX_BYTES = 1 << 30
_CACHE_SIZE = 32  # wrapped steps kept (as many as the engine's compiled-step cache)

# Training sets placed on the devices, by (the ids of the set's arrays, mesh); the host arrays are
# held beside their copies so that their ids stay theirs.
_DEVICE_DATA: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def gathering(step: Callable, mesh: Mesh) -> Callable:
    """``step(state, batch)`` as ``(state, data, idx) -> step(state, {k: data[k][idx]})``, one
    jitted call: the batch is gathered on the device from the device-resident ``data``.

    ``idx`` (the global batch's rows) is split over ``mesh``'s data axis; it may be a host NumPy
    array (one process: every index is on this host) or a global ``jax.Array``."""
    return compiler.jit(
        lambda state, data, idx: step(state, jax.tree.map(lambda a: a[idx], data)),
        mesh=mesh,  # the outer program is the one compiled: it carries the step's options
        in_shardings=(None, None, batch_sharding(mesh)),  # None: the state and data keep their own
    )


def device_train_data(train: Any, mesh: Mesh) -> dict[str, jax.Array] | None:
    """The training split's ``x``, ``y`` and ``group`` replicated on ``mesh`` (placed once per
    process and reused; the two most recent sets are kept), or None when the split is larger than
    ``DEVICE_DATA_MAX_BYTES``."""
    arrays = {"x": train.x, "y": train.y, "group": train.group}
    if sum(np.asarray(a).nbytes for a in arrays.values()) > DEVICE_DATA_MAX_BYTES:
        return None
    key = (*(id(a) for a in arrays.values()), mesh)
    if key not in _DEVICE_DATA:
        _DEVICE_DATA[key] = (arrays, replicate(arrays, mesh))
        while len(_DEVICE_DATA) > 2:
            _DEVICE_DATA.popitem(last=False)
    _DEVICE_DATA.move_to_end(key)
    return _DEVICE_DATA[key][1]


__all__ = ["DEVICE_DATA_MAX_BYTES", "device_train_data", "gathering"]
