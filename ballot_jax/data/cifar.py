"""CIFAR-10 / CIFAR-100 from TFDS or from a folder (or zip) of class sub-folders; groups = classes.

Folder layout (the root may also be one sub-folder down, e.g. ``cifar10/train/...`` in a zip)::

    root/train/<class>/*.jpg|png
    root/test/<class>/*.jpg|png

Class ids are the class folder names in sorted order (for CIFAR-10 and CIFAR-100 this is the
official label order).

Long-tailed variants (``imbalance_ratio`` > 1, e.g. "CIFAR-10-LT" of Cao et al. 2019 and Cui et
al. 2019): after the balanced validation split is carved off, the TRAIN split keeps
``n_c = floor(n_max * imbalance_ratio ** (-c / (C - 1)))`` examples of class ``c`` (class 0 is the
head, class C-1 the tail with ``n_max / imbalance_ratio``), a ``seed``-random subset of each class;
``n_max`` is the largest class's train count. Validation and test stay balanced.
``load_dataset("cifar10_lt", ...)`` is CIFAR-10 with ``imbalance_ratio=10`` by default.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Sequence

import numpy as np

from ballot_jax.data.base import (
    Dataset,
    DatasetInfo,
    DatasetNotFoundError,
    carve_val,
    choose_source,
    make_image_dataset,
)
from ballot_jax.data.long_tail import check_imbalance_ratio, long_tail_indices
from ballot_jax.data.images import (
    IMAGE_EXTENSIONS,
    FileSource,
    array_to_image,
    cached,
    decode_images,
    open_source,
)
from ballot_jax.data.tfds_source import iter_records, open_tfds

NAMES = ("cifar10", "cifar100")
SPLITS = ("train", "test")


def _layout_hint(name: str) -> str:
    return (
        f"{name} not found. Pass data_dir= a folder or .zip with train/<class>/*.jpg|png and "
        f"test/<class>/*.jpg|png (at its root or one sub-folder down), e.g. "
        f"load_dataset('{name}', data_dir='../shared/data/cifar10-jpeg.zip'); or, for a TFDS copy "
        f"prepared as array_record, source='tfds' and data_dir=<TFDS data_dir>."
    )


def load_cifar_folder(
    data_dir: str | os.PathLike,
    name: str = "cifar10",
    max_per_class: int | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    imbalance_ratio: float = 1.0,
) -> Dataset:
    """Load CIFAR-style data from class sub-folders of a folder or zip (see the module docstring).

    ``max_per_class`` keeps the first files (sorted by name) of every class in train and in test.
    ``image_size=None`` keeps the stored size (32 for CIFAR). Val is a ``seed``-random,
    class-stratified ``val_fraction`` of train. ``cache_dir`` stores the decoded images.
    ``imbalance_ratio`` > 1 makes the train split long-tailed (``long_tail_indices``).
    """
    check_imbalance_ratio(imbalance_ratio)
    path = os.path.abspath(os.fspath(data_dir))
    with open_source(path, _layout_hint(name)) as source:
        prefix = source.locate("train/")
        if prefix is None:
            raise DatasetNotFoundError(f"No train/ folder in {path!r}. {_layout_hint(name)}")
        files, labels, class_names = _class_files(source, prefix, max_per_class)
        key = ("cifar", name, source.fingerprint(files["train"][0]), len(files["train"]),
               len(files["test"]), image_size, max_per_class)
        arrays = cached(cache_dir, key, lambda: {
            s: decode_images(source, files[s], image_size, f"{name} {s}") for s in SPLITS
        })
    return _make_dataset(name, arrays["train"], labels["train"], arrays["test"], labels["test"],
                         class_names, val_fraction, seed, imbalance_ratio)


def load_cifar_tfds(
    name: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    max_per_class: int | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    imbalance_ratio: float = 1.0,
) -> Dataset:
    """Load a prepared TFDS ``cifar10`` / ``cifar100`` (never downloads).

    ``max_per_class`` keeps the first records of every class in train and in test; the other
    options are as in ``load_cifar_folder``. Raises ``DatasetNotFoundError`` at once when the
    dataset is not prepared in ``data_dir`` (default: TFDS's own).
    """
    _check_name(name)
    check_imbalance_ratio(imbalance_ratio)
    alternative = (f"Image folders instead: load_dataset('{name}', source='raw', data_dir=<folder "
                   f"or .zip with train/<class>/ and test/<class>/>).")
    sources = open_tfds(name, SPLITS, data_dir, alternative)
    class_names = tuple(sources["train"].dataset_info.features["label"].names)
    key = ("cifar_tfds", name, os.fspath(data_dir or "default"),
           tuple(len(sources[s]) for s in SPLITS), image_size, max_per_class)

    def read() -> dict[str, np.ndarray]:
        arrays = {}
        for s in SPLITS:
            arrays[s], arrays[f"{s}_labels"] = _read_tfds_split(
                sources[s], len(class_names), max_per_class, image_size, f"{name} {s}")
        return arrays

    arrays = cached(cache_dir, key, read)
    return _make_dataset(name, arrays["train"], arrays["train_labels"], arrays["test"],
                         arrays["test_labels"], class_names, val_fraction, seed, imbalance_ratio)


def load_cifar(
    name: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    **kwargs,
) -> Dataset:
    """``load_dataset("cifar10" | "cifar100", ...)``: image folders or TFDS, chosen by ``source``.

    ``source="auto"``: folders when ``data_dir`` is a zip or holds ``train/`` (itself or one level
    down), TFDS otherwise (``data_dir`` then is a TFDS data_dir, None = TFDS default).
    """
    _check_name(name)
    kind = choose_source(source, data_dir, _looks_raw, _layout_hint(name))
    if kind == "raw":
        if data_dir is None:
            raise DatasetNotFoundError(f"source='raw' needs data_dir. {_layout_hint(name)}")
        return load_cifar_folder(data_dir, name=name, **kwargs)
    return load_cifar_tfds(name, data_dir, **kwargs)


def load_cifar10(
    data_dir: str | os.PathLike | None = None, source: str = "auto", **kwargs
) -> Dataset:
    """CIFAR-10; see ``load_cifar``."""
    return load_cifar("cifar10", data_dir, source, **kwargs)


def load_cifar100(
    data_dir: str | os.PathLike | None = None, source: str = "auto", **kwargs
) -> Dataset:
    """CIFAR-100 (100 fine labels); see ``load_cifar``."""
    return load_cifar("cifar100", data_dir, source, **kwargs)


def load_cifar10_lt(
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    imbalance_ratio: float = 10.0,
    **kwargs,
) -> Dataset:
    """Long-tailed CIFAR-10 (``load_dataset("cifar10_lt")``): ``load_cifar`` with
    ``imbalance_ratio`` 10 by default (100 is the other usual setting); groups = classes."""
    return load_cifar("cifar10", data_dir, source, imbalance_ratio=imbalance_ratio, **kwargs)


def _class_files(
    source: FileSource, prefix: str, max_per_class: int | None
) -> tuple[dict[str, list[str]], dict[str, np.ndarray], tuple[str, ...]]:
    """Image files and labels per split (``prefix/<split>/<class>/<file>``), plus class names."""
    buckets: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in source.list_files(prefix):
        parts = path[len(prefix):].split("/")
        if len(parts) == 3 and parts[0] in SPLITS and parts[2].lower().endswith(IMAGE_EXTENSIONS):
            buckets[(parts[0], parts[1])].append(path)
    class_names = tuple(sorted(c for s, c in buckets if s == "train"))
    unknown = sorted({c for s, c in buckets if c not in class_names})
    if not class_names or unknown:
        raise DatasetNotFoundError(
            f"Bad class folders under {prefix or './'}train/ and test/: train classes "
            f"{list(class_names)}, test-only classes {unknown}.")
    files, labels = {}, {}
    for s in SPLITS:
        per_class = [buckets[(s, c)][:max_per_class] for c in class_names]
        files[s] = [f for group in per_class for f in group]
        labels[s] = np.repeat(np.arange(len(class_names)), [len(g) for g in per_class])
    return files, labels, class_names


def _read_tfds_split(
    source, num_classes: int, max_per_class: int | None, image_size: int | None, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the first ``max_per_class`` records of every class, in record order."""
    limit = len(source) if max_per_class is None else min(len(source), num_classes * max_per_class)
    counts = np.zeros(num_classes, np.int64)
    images, labels = [], []
    for record in iter_records(source, range(len(source)), label):
        c = int(record["label"])
        if max_per_class is not None and counts[c] >= max_per_class:
            continue
        counts[c] += 1
        labels.append(c)
        images.append(array_to_image(record["image"], image_size))
        if len(labels) == limit:
            break
    side = image_size or 32
    stacked = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
    return stacked, np.array(labels, np.int64)


def _make_dataset(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    val_fraction: float,
    seed: int,
    imbalance_ratio: float = 1.0,
) -> Dataset:
    """Carve val from train (stratified), make the rest of train long-tailed when
    ``imbalance_ratio`` > 1, normalise with train statistics; groups = classes."""
    train, val = carve_val(np.arange(len(train_labels)), train_labels, val_fraction, seed)
    if imbalance_ratio != 1.0:
        train = train[long_tail_indices(train_labels[train], imbalance_ratio, seed,
                                        len(class_names))]
    images = [train_images[train], train_images[val], test_images]
    labels = [train_labels[train], train_labels[val], test_labels]
    info = DatasetInfo(name, len(class_names), len(class_names), tuple(class_names),
                       tuple(class_names), tuple(train_images.shape[1:]))
    return make_image_dataset(images, labels, labels, info)


def _looks_raw(path: str) -> bool:
    """Whether ``path`` is a zip, or a folder holding ``train/`` (itself or one level down)."""
    if os.path.isfile(path):
        return True
    with FileSource(path) as source:
        return source.locate("train/") is not None


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"CIFAR name must be one of {NAMES}, got {name!r}")
