"""The containers every loader returns, plus the split and normalisation helpers they share."""

from __future__ import annotations

import os
import sys
from typing import Callable, NamedTuple, Sequence

import numpy as np


class Split(NamedTuple):
    """One split of a dataset, as NumPy arrays.

    x: float32, NHWC images (normalised) or [N, D] tabular features.
    y: int32 [N] class labels in [0, num_classes).
    group: int32 [N] group ids in [0, num_groups).
    """

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray

    @property
    def num_examples(self) -> int:
        """Number of examples N (``len(split)`` is 3, the tuple's length)."""
        return int(self.y.shape[0])


class DatasetInfo(NamedTuple):
    """Static facts about a dataset; ``input_shape`` excludes the batch dimension."""

    name: str
    num_classes: int
    num_groups: int
    group_names: tuple[str, ...]
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]


class Dataset(NamedTuple):
    """Train, validation and test splits plus their ``DatasetInfo``."""

    train: Split
    val: Split
    test: Split
    info: DatasetInfo


class DatasetNotFoundError(FileNotFoundError):
    """The data is not where the loader looked; the message says how to point the loader at it."""


class DamagedArchiveError(OSError):
    """A data archive (zip) is damaged or truncated; the message names it and says to copy it again."""


def log(message: str) -> None:
    """Print one progress/warning line to stderr, prefixed with the package name."""
    print(f"[ballot_jax.data] {message}", file=sys.stderr, flush=True)


def check_path_exists(path: str | os.PathLike, hint: str) -> str:
    """Return ``path`` as a string, or raise ``DatasetNotFoundError(hint)`` if it does not exist."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatasetNotFoundError(f"No such file or folder: {path!r}.\n{hint}")
    return path


def stratified_split(
    keys: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices 0..N-1 into (train, val, test), stratified by ``keys`` (e.g. labels).

    Within every stratum the indices are shuffled with ``seed`` and the first
    ``round(n * test_fraction)`` go to test, the next ``round(n * val_fraction)`` to val. Each
    returned index array is sorted, so the result depends only on ``keys`` and ``seed``.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need fractions >= 0 with sum < 1, got {val_fraction=}, {test_fraction=}")
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for key in np.unique(keys):
        idx = rng.permutation(np.flatnonzero(keys == key))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


def carve_val(
    train_idx: np.ndarray, keys: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train_idx`` into (train, val), stratified by ``keys[train_idx]``."""
    sub_train, sub_val, _ = stratified_split(keys[train_idx], val_fraction, 0.0, seed)
    return train_idx[sub_train], train_idx[sub_val]


def channel_stats(train_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (last axis) mean and std of ``train_x``; a zero std is replaced by 1.

    Accumulates in float64, one channel at a time (fast and accurate for large image arrays).
    """
    flat = train_x.reshape(-1, train_x.shape[-1])
    mean = np.array([flat[:, c].mean(dtype=np.float64) for c in range(flat.shape[1])])
    std = np.array([flat[:, c].std(dtype=np.float64) for c in range(flat.shape[1])])
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(train_x: np.ndarray, *other_x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Standardise every array per channel (last axis) with statistics of ``train_x`` only.

    Returns float32 arrays in the order given: ``(train, *other)``.
    """
    train_x = np.asarray(train_x, np.float32)
    mean, std = channel_stats(train_x)
    # Broadcast the statistics over a whole example so NumPy's inner loops are long (much faster
    # than broadcasting a length-C vector).
    example_mean = np.broadcast_to(mean, train_x.shape[1:]).ravel()
    example_std = np.broadcast_to(std, train_x.shape[1:]).ravel()
    outputs = []
    for x in (train_x, *other_x):
        x = np.asarray(x, np.float32)
        out = x.reshape(len(x), example_mean.size) - example_mean  # new array; x stays untouched
        out /= example_std
        outputs.append(out.reshape(x.shape))
    return tuple(outputs)


def make_split(x: np.ndarray, y: np.ndarray, group: np.ndarray) -> Split:
    """Build a ``Split`` with the documented dtypes (x float32, y and group int32)."""
    return Split(np.asarray(x, np.float32), np.asarray(y, np.int32), np.asarray(group, np.int32))


def make_image_dataset(
    images: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    groups: Sequence[np.ndarray],
    info: DatasetInfo,
) -> Dataset:
    """Turn uint8 NHWC images for (train, val, test) into a normalised ``Dataset``.

    Images are scaled to [0, 1], then standardised per channel with the train split's mean/std.
    """
    scaled = [np.asarray(im, np.float32) / np.float32(255.0) for im in images]
    xs = standardize(*scaled)
    train, val, test = (make_split(x, y, g) for x, y, g in zip(xs, ys, groups))
    return Dataset(train, val, test, info)


def binary_group_names(name: str) -> tuple[str, str]:
    """Names for a 0/1 attribute: ``("not <name>", "<name>")``."""
    return (f"not {name}", name)


def cell_group_names(target: str, sensitive: str) -> tuple[str, ...]:
    """Names for the cells ``2 * y + a`` of a binary target ``y`` and a binary attribute ``a``."""
    return tuple(f"{target}={y},{sensitive}={a}" for y in range(2) for a in range(2))


SOURCES = ("auto", "raw", "tfds")


def choose_source(
    source: str, data_dir: str | os.PathLike | None, looks_raw: Callable[[str], bool], hint: str
) -> str:
    """Resolve ``source`` ("auto" | "raw" | "tfds") to "raw" or "tfds".

    "auto" means: "tfds" when ``data_dir`` is None, "raw" when ``looks_raw(data_dir)`` (a raw folder
    or zip), else "tfds" (``data_dir`` is then a TFDS data_dir). A ``data_dir`` that does not exist
    raises ``DatasetNotFoundError(hint)``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source != "auto":
        return source
    if data_dir is None:
        return "tfds"
    return "raw" if looks_raw(check_path_exists(data_dir, hint)) else "tfds"
