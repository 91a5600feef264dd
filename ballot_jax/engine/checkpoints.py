"""Checkpoints: periodic ones for resuming (Orbax), and named one-shot items (rewind point, masks,
final states): raw leaves when one process holds them all (``save_item``), Orbax otherwise.

Every restore is checked against the tree the run expects; a mismatch (another model, another
config, a truncated write) raises ``CheckpointMismatchError`` naming the directory to delete, never
silently reusing it.

Integrity: every finished artefact carries SHA-256 checksums, written once its save has completed
and verified before anything reads it (so nothing reads a damaged file). An item (``save_item``,
each periodic checkpoint) gets a ``SHA256SUMS.json`` manifest of all its files
inside its directory; a JSON record (``write_json``) holds the checksum of its content under the
key ``"_sha256"`` (one file, replaced atomically). A damaged, truncated or checksum-less artefact
raises ``CorruptArtefactError`` naming what to delete: the same command then redoes that part.
An item directory without its manifest is a save that was killed before it finished:
``item_exists`` reports it absent, so the run saves it again (with the same content: every
artefact is a pure function of the config), and ``Periodic`` removes such a step and resumes from
the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from ballot_jax.engine.progress import log

PyTree = Any
MANIFEST = "SHA256SUMS.json"  # inside an item's directory: {"files": {relative path: sha256}}
JSON_CHECKSUM = "_sha256"  # key of a JSON record holding the sha256 of the rest of its content


class CheckpointMismatchError(RuntimeError):
    """A checkpoint on disk does not fit the state this run expects."""


class CorruptArtefactError(CheckpointMismatchError):
    """A finished artefact (item, periodic checkpoint, JSON record) is damaged or lacks checksums."""


def _abstract(tree: PyTree) -> PyTree:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _mismatch(path: pathlib.Path, err: Exception) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"checkpoint {path} does not match this run ({type(err).__name__}: {str(err)[:300]}). "
        "It was written by a different model or configuration, or is corrupt: delete that directory "
        "or choose another --workdir."
    )


def _corrupt(path: pathlib.Path, reason: str) -> CorruptArtefactError:
    return CorruptArtefactError(
        f"{path} is damaged ({reason}). Delete it and run the same command again: that part is redone."
    )


# --------------------------------------------------------------------------------------------------
# Checksums


def _sync(name: str) -> None:
    """Barrier over all processes of a multi-process run (no-op in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _sha256(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _seal(directory: pathlib.Path) -> None:
    """Write ``directory/MANIFEST`` (checksums of every file below it) once its save has completed.

    Multi-process: process 0 writes it (every process's files are in place once Orbax finished),
    then all processes wait for it, so none reads the item before it is sealed.
    """
    if jax.process_index() == 0:
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
        sums = {p.relative_to(directory).as_posix(): _sha256(p) for p in files}
        tmp = directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"files": sums}, indent=1, sort_keys=True))
        tmp.replace(directory / MANIFEST)
    _sync(f"ballot_jax sealed {directory}")


def _verify(directory: pathlib.Path) -> None:
    """Raise ``CorruptArtefactError`` unless every file ``directory/MANIFEST`` lists has its checksum."""
    try:
        sums = json.loads((directory / MANIFEST).read_text())["files"]
        if not sums or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
            raise ValueError("no files listed")
    except FileNotFoundError:
        raise _corrupt(directory, f"no {MANIFEST}: its save never finished, or an older version wrote it") from None
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise _corrupt(directory, f"its {MANIFEST} is unreadable") from None
    for name, digest in sums.items():
        path = directory / name
        if not path.is_file():
            raise _corrupt(directory, f"{name} is missing")
        if _sha256(path) != digest:
            raise _corrupt(directory, f"{name} does not match its checksum")


def _check_present(path: pathlib.Path) -> None:
    if not path.is_dir():
        raise CheckpointMismatchError(
            f"checkpoint {path} is missing (deleted, or never written): delete {path.parent} and run "
            "the same command again to redo that part."
        )


# --------------------------------------------------------------------------------------------------
# Orbax items and periodic checkpoints


class Periodic:
    """Numbered checkpoints of one training phase (``CheckpointManager``, keeps the last two)."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory).absolute()
        _check_steps(self.directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def save(self, step: int, state: PyTree) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()
        _seal(self.directory / str(step))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, step: int, like: PyTree) -> PyTree:
        _verify(self.directory / str(step))
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))
        except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
            raise _mismatch(self.directory / str(step), err) from err

    def close(self) -> None:
        self._manager.close()


def _steps(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()) if directory.is_dir() else []


def _check_steps(directory: pathlib.Path) -> None:
    """Before the manager reads any step: remove the steps without a manifest (a save killed before
    it was sealed; process 0, then every process sees the same steps), so training resumes from the
    last complete one, and verify the others."""
    if jax.process_index() == 0:
        for step in _steps(directory):
            if not (step / MANIFEST).exists():
                shutil.rmtree(step)
                log(f"{step}: an unfinished periodic checkpoint (no {MANIFEST}), removed")
    _sync(f"ballot_jax periodic {directory}")
    for step in _steps(directory):
        _verify(step)


# An item of one process whose leaves are plain arrays is written without Orbax (which costs ~30 ms
# a save on this project's small states, ~40x a raw write): every leaf's bytes in one file, in
# flattening order, and their shapes and dtypes beside it. Restores read either layout.
LEAVES = "leaves.bin"
LEAVES_INDEX = "leaves.json"
LEAVES_FORMAT = "ballot_jax.leaves/1"


def _leaf_dtype(leaf: Any):
    """A leaf's dtype: an array's own (a jax.Array's read without fetching its data), else NumPy's
    for the Python or NumPy scalar."""
    dtype = getattr(leaf, "dtype", None)
    return np.asarray(leaf).dtype if dtype is None else dtype


def _plain_leaves(tree: PyTree) -> list | None:
    """``tree``'s leaves when this process holds all of them as numeric or boolean arrays (or such
    scalars), else None: typed PRNG keys and other leaves go to Orbax (strings and object arrays are
    refused first, ``_refuse_unsupported``)."""
    if jax.process_count() > 1:
        return None
    leaves = jax.tree.leaves(tree)
    for leaf in leaves:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return None
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)):
            return None
        dtype = _leaf_dtype(leaf)
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) or not (
            jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)
        ):
            return None
    return leaves


def _save_leaves(path: pathlib.Path, leaves: list) -> None:
    """Write the leaves to a sibling directory, seal it, then move it into place."""
    tmp = path.with_name(path.name + ".saving")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    index, offset = [], 0
    with open(tmp / LEAVES, "wb") as f:
        for leaf in leaves:
            array = np.asarray(leaf)
            f.write(array.tobytes())
            index.append({"shape": list(array.shape), "dtype": array.dtype.name, "offset": offset})
            offset += array.nbytes
    (tmp / LEAVES_INDEX).write_text(json.dumps({"format": LEAVES_FORMAT, "leaves": index}))
    _seal(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.replace(path)


def _load_leaves(path: pathlib.Path) -> list[np.ndarray]:
    index = json.loads((path / LEAVES_INDEX).read_text())
    if index.get("format") != LEAVES_FORMAT:
        raise ValueError(f"unknown item format {index.get('format')!r}")
    data = (path / LEAVES).read_bytes()
    leaves = []
    for entry in index["leaves"]:
        dtype = np.dtype(jnp.dtype(entry["dtype"]))
        count = int(np.prod(entry["shape"], dtype=np.int64))
        leaves.append(np.frombuffer(data, dtype, count, entry["offset"]).reshape(tuple(entry["shape"])).copy())
    return leaves


def _like_leaf(array: np.ndarray, like: Any) -> Any:
    """``array`` as the kind of leaf ``like`` is (a jax.Array with its sharding, NumPy, a scalar)."""
    if isinstance(like, jax.Array):
        return jax.make_array_from_callback(array.shape, like.sharding, lambda index: array[index])
    if isinstance(like, (np.ndarray, np.generic)):
        return array
    return array.item()


def save_item(path: str | os.PathLike, tree: PyTree) -> None:
    """Write one pytree to ``path`` (a directory), atomically, then its checksum manifest; overwrites.

    One process with plain array leaves: raw leaves (``LEAVES``); otherwise Orbax."""
    path = pathlib.Path(path).absolute()
    leaves = _plain_leaves(tree)
    if leaves is not None:
        _save_leaves(path, leaves)
        return
    _refuse_unsupported(tree)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, tree, force=True)
        ckptr.wait_until_finished()
    _seal(path)


def _refuse_unsupported(tree: PyTree) -> None:
    """Raise ``ValueError`` for a leaf no checkpoint holds (a string, bytes, or an object, string or
    bytes array) before Orbax starts: Orbax refuses them too, but only after its background thread
    has begun creating the directory, which can outlive the failed save and collide with the next one."""
    for key, leaf in jax.tree_util.tree_leaves_with_path(tree):
        kind = getattr(getattr(leaf, "dtype", None), "kind", None)
        if isinstance(leaf, (str, bytes)) or (isinstance(leaf, (np.ndarray, np.generic)) and kind in ("O", "U", "S")):
            what = type(leaf).__name__ if isinstance(leaf, (str, bytes)) else f"{type(leaf).__name__} of dtype {leaf.dtype}"
            raise ValueError(
                f"Unsupported type for a checkpoint leaf at {jax.tree_util.keystr(key) or 'the root'}: {what}; "
                "a checkpoint holds numeric, boolean and PRNG-key arrays (keep strings and objects out of the state)"
            )


def load_item(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Read the pytree at ``path``, verified against its checksums, then checked against ``like``'s
    structure, shapes and dtypes."""
    path = pathlib.Path(path).absolute()
    _check_present(path)
    _verify(path)
    try:
        if (path / LEAVES_INDEX).is_file():
            return _restore_leaves(path, like)
        with ocp.StandardCheckpointer() as ckptr:
            return ckptr.restore(path, _abstract(like))
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise _mismatch(path, err) from err


def _restore_leaves(path: pathlib.Path, like: PyTree) -> PyTree:
    arrays = _load_leaves(path)
    like_leaves, treedef = jax.tree.flatten(like)
    if len(arrays) != len(like_leaves):
        raise ValueError(f"{len(arrays)} leaves saved, {len(like_leaves)} expected")
    for i, (array, leaf) in enumerate(zip(arrays, like_leaves)):
        shape, dtype = np.shape(leaf), np.dtype(_leaf_dtype(leaf))
        if array.shape != shape or array.dtype != dtype:
            raise ValueError(f"leaf {i}: saved {array.dtype}{list(array.shape)}, expected {dtype}{list(shape)}")
    return jax.tree.unflatten(treedef, [_like_leaf(a, leaf) for a, leaf in zip(arrays, like_leaves)])


def read_leaves(path: str | os.PathLike) -> list[np.ndarray]:
    """The leaves of the item at ``path`` without a template (either layout), verified first."""
    path = pathlib.Path(path).absolute()
    _check_present(path)
    _verify(path)
    if (path / LEAVES_INDEX).is_file():
        return _load_leaves(path)
    with ocp.StandardCheckpointer() as ckptr:
        return [np.asarray(leaf) for leaf in jax.tree.leaves(ckptr.restore(path))]


def item_exists(path: str | os.PathLike) -> bool:
    """True if a finished item is at ``path``: it was moved into place and its manifest is written
    (a directory without one is an unfinished save, to be saved again)."""
    return (pathlib.Path(path) / MANIFEST).is_file()


# --------------------------------------------------------------------------------------------------
# JSON records


def _canonical(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def write_json(path: str | os.PathLike, obj: dict[str, Any]) -> None:
    """Write the dict ``obj`` as JSON with the checksum of its content (key ``"_sha256"``),
    atomically (temp file + rename), so a killed run never leaves half a record.

    Multi-process: only process 0 writes (every process holds the same ``obj``); several writers
    sharing one temp name would race, leaving a torn record or failing the second rename.
    """
    if not isinstance(obj, dict) or JSON_CHECKSUM in obj:
        raise TypeError(f"write_json takes a dict without the key {JSON_CHECKSUM!r}")
    if jax.process_index() != 0:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(_canonical(obj).encode()).hexdigest()
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(_canonical({**obj, JSON_CHECKSUM: digest}))
    tmp.replace(path)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """The dict ``write_json`` wrote at ``path``, verified against its checksum (which is removed)."""
    path = pathlib.Path(path)
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise _corrupt(path, "not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get(JSON_CHECKSUM), str):
        raise _corrupt(path, f"no {JSON_CHECKSUM!r} checksum: an older version wrote it, or it was edited")
    digest = obj.pop(JSON_CHECKSUM)
    if hashlib.sha256(_canonical(obj).encode()).hexdigest() != digest:
        raise _corrupt(path, "its content does not match its checksum")
    return obj
