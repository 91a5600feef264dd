"""Phases on disk: written once, skipped when the same command runs again.

What the levels loop (``levels.run_levels``) and the methods with phase loops of their own
(SafeCompress, FairScratch) share: an artefact made once and then loaded (``saved_item``), a phase
trained with periodic checkpoints and its final state saved (``train_phase``) or loaded once
finished (``finished_phase``: ``final`` and ``record.json`` both present), the record of a final
model (``final_record``) and its one-line summary for the log (``describe``).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Callable

from ballot_jax.engine import checkpoints
from ballot_jax.masks import Mask, sparsity_summary

PyTree = Any


def saved_item(path: pathlib.Path, like: PyTree, make: Callable[[], PyTree]) -> PyTree:
    """The item at ``path`` (shaped like ``like``); the first time, ``make()``, saved there."""
    if checkpoints.item_exists(path):
        return checkpoints.load_item(path, like)
    item = make()
    checkpoints.save_item(path, item)
    return item


def finished_phase(
    directory: pathlib.Path, like: PyTree, item: str = "final", record: str = "record.json"
) -> tuple[PyTree, dict[str, Any]] | None:
    """(final state, record) of the phase in ``directory`` when it finished (both written), else
    ``None``; ``item`` and ``record`` name other artefacts written last, e.g. a mask update's."""
    item_path, record_path = directory / item, directory / record
    if checkpoints.item_exists(item_path) and record_path.exists():
        return checkpoints.load_item(item_path, like), checkpoints.read_json(record_path)
    return None


def train_phase(
    trainer, state, config, until_step: int, directory: pathlib.Path, *, data_seed: int, desc: str,
    on_step=None, objective=None,
) -> tuple[PyTree, float]:
    """``trainer.train`` up to ``until_step`` with periodic checkpoints in ``directory/ckpt`` (resuming
    from them), then the final state saved as ``directory/final``: (state, seconds of training)."""
    t0 = time.perf_counter()
    state = trainer.train(
        state, config, until_step, data_seed=data_seed, ckpt_dir=directory / "ckpt", on_step=on_step, desc=desc,
        objective=objective,
    )
    seconds = time.perf_counter() - t0
    checkpoints.save_item(directory / "final", state)
    return state, seconds


def final_record(
    level: int, mask: Mask, params: PyTree, train_time: float, report: Callable[[Any], dict], data
) -> dict[str, Any]:
    """The record of a final model: level, sparsity, kept count, training time and
    ``report(split)`` (the metrics) of ``data``'s validation and test splits."""
    summary = sparsity_summary(mask, params)
    return {
        "level": level,
        "sparsity": summary["sparsity"],
        "overall_sparsity": summary["overall_sparsity"],
        "kept": summary["kept"],
        "train_time_s": train_time,
        "val": report(data.val),
        "test": report(data.test),
    }


def describe(record: dict[str, Any]) -> str:
    """A record's line in the log: sparsity, val and test accuracy, test CWV and MCD, time."""
    return (
        f"sparsity {record['sparsity']:.3f}  val acc {record['val']['accuracy']:.4f}  "
        f"test acc {record['test']['accuracy']:.4f}  CWV {record['test']['cwv']:.5f}  "
        f"MCD {record['test']['mcd']:.4f}  ({record['train_time_s']:.1f}s)"
    )
