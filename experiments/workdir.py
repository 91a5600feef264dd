"""The workdir: where each method's run and record live, and the lock that allows one run per workdir.

Layout: ``seed_S/dense`` for the dense run, ``seed_S/sparsity_X/<method>`` for every other method
(:func:`method_dir`), each with its record next to it (``<method>.record.json``,
:func:`record_path`). :func:`workdir_lock` holds ``workdir/.lock`` while a run works there; a
second run on the same workdir fails at once with ``WorkdirLockedError`` naming the holder.
Standalone: it imports no other module of ``experiments``, which take :func:`_log` from here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import sys
import time
from typing import Any

import numpy as np


class WorkdirLockedError(RuntimeError):
    """Another run holds the workdir's lock."""


def _log(message: str) -> None:
    print(f"[experiments] {message}", file=sys.stderr, flush=True)


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

