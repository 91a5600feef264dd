"""Orbax checkpoints: periodic ones for resuming, and named one-shot items (rewind point, masks).

Every restore is checked against the tree the run expects; a mismatch (another model, another
config, a truncated write) raises ``CheckpointMismatchError`` naming the directory to delete, never
silently reusing it.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

PyTree = Any


class CheckpointMismatchError(RuntimeError):
    """A checkpoint on disk does not fit the state this run expects."""


def _abstract(tree: PyTree) -> PyTree:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _mismatch(path: pathlib.Path, err: Exception) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"checkpoint {path} does not match this run ({type(err).__name__}: {str(err)[:300]}). "
        "It was written by a different model or configuration, or is corrupt: delete that directory "
        "or choose another --workdir."
    )


class Periodic:
    """Numbered checkpoints of one training phase (``CheckpointManager``, keeps the last two)."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def save(self, step: int, state: PyTree) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, step: int, like: PyTree) -> PyTree:
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))
        except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
            raise _mismatch(self.directory / str(step), err) from err

    def close(self) -> None:
        self._manager.close()


def save_item(path: str | os.PathLike, tree: PyTree) -> None:
    """Write one pytree to ``path`` (a directory), atomically; overwrites."""
    path = pathlib.Path(path).absolute()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, tree, force=True)
        ckptr.wait_until_finished()


def load_item(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Read the pytree at ``path``, checked against ``like``'s structure, shapes and dtypes."""
    path = pathlib.Path(path).absolute()
    try:
        with ocp.StandardCheckpointer() as ckptr:
            return ckptr.restore(path, _abstract(like))
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise _mismatch(path, err) from err


def item_exists(path: str | os.PathLike) -> bool:
    """True if a finished item is at ``path`` (Orbax writes to a temporary name, then renames)."""
    return pathlib.Path(path).is_dir()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a killed run never leaves half a record.

    Multi-process: only process 0 writes (every process holds the same ``obj``); several writers
    sharing one temp name would race, leaving a torn record or failing the second rename.
    """
    if jax.process_index() != 0:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(pathlib.Path(path).read_text())
