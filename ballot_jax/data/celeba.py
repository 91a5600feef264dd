"""CelebA faces: a binary target attribute, groups from a sensitive attribute (or, with
``sensitive="label"``, from the target itself: groups = classes).

Two sources give the same ``Dataset``:

* raw: the original download layout (``list_attr_celeba.txt`` + ``img_align_celeba/``, optionally
  ``list_eval_partition.txt``), as a folder, its parent folder, or a ``.zip`` read in place;
* tfds: a prepared (array_record) TFDS ``celeb_a``, read without TensorFlow.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ballot_jax.data.base import (
    Dataset,
    DatasetInfo,
    DatasetNotFoundError,
    binary_group_names,
    carve_val,
    cell_group_names,
    choose_source,
    make_image_dataset,
)
from ballot_jax.data.images import FileSource, array_to_image, cached, decode_images, open_source
from ballot_jax.data.tfds_source import iter_records, open_tfds

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba/"
GROUP_MODES = ("attribute", "cell")
LABEL = "label"  # sensitive="label": the group is the label itself (class-wise fairness)

RAW_LAYOUT = (
    "Pass data_dir= one of:\n"
    f"  * a folder containing {ATTR_FILE} and {IMAGE_DIR} (optionally {PARTITION_FILE});\n"
    "  * its parent folder, containing celeba/;\n"
    "  * a .zip archive of either layout, read in place, e.g.\n"
    "      load_dataset('celeba', data_dir='../shared/data/celeba-10k.zip')."
)
RAW_ALTERNATIVE = (
    "Raw files instead: load_dataset('celeba', source='raw', data_dir=<folder or .zip holding "
    f"{ATTR_FILE} and {IMAGE_DIR}>)."
)
NOT_FOUND_HINT = (
    f"CelebA not found. {RAW_LAYOUT}\n"
    "For a TFDS copy prepared as array_record: source='tfds', data_dir=<TFDS data_dir>."
)


def load_celeba(
    data_dir: str | os.PathLike,
    target: str = "Smiling",
    sensitive: str = "Male",
    groups: str = "attribute",
    image_size: int = 32,
    split: tuple[float, float] = (0.1, 0.2),
    max_examples: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load CelebA from the raw files (folder, parent folder or zip; see the module docstring).

    y = (``target`` attribute == +1). ``groups="attribute"``: group = the ``sensitive`` attribute
    (0/1); ``groups="cell"``: group = 2 * y + attribute (4 cells). ``sensitive="label"``: group = y
    (groups = classes, the Ballot authors' protocol with ``target="Male"``; only with
    ``groups="attribute"``). Images are centre-cropped to a
    square and resized to ``image_size`` (bilinear), then normalised with train statistics.

    Splits: with ``list_eval_partition.txt``, the official ones (0 train, 1 val, 2 test). Without
    it, ``split = (val_fraction, test_fraction)``: the last ``test_fraction`` of the rows (file
    order) are test, and a ``seed``-random ``val_fraction`` of the remaining rows (stratified by
    cell) is val. ``max_examples`` keeps the first rows in file order (per official partition,
    proportionally, when the partition file exists). ``cache_dir`` stores the decoded images.
    """
    _check_groups(groups)
    path = os.path.abspath(os.fspath(data_dir))
    with open_source(path, NOT_FOUND_HINT) as source:
        prefix = source.locate(ATTR_FILE)
        if prefix is None:
            raise DatasetNotFoundError(
                f"No {ATTR_FILE} in {path!r} or its sub-folders.\n{RAW_LAYOUT}")
        names, attr_names, attrs = parse_attributes(source.read(prefix + ATTR_FILE).decode())
        partition = None
        if source.exists(prefix + PARTITION_FILE):
            partition = parse_partition(source.read(prefix + PARTITION_FILE).decode(), names)
        rows = select_rows(len(names), partition, max_examples)
        files = [prefix + IMAGE_DIR + names[i] for i in rows]
        key = ("celeba", source.fingerprint(prefix + ATTR_FILE), partition is not None,
               image_size, max_examples)
        images = cached(cache_dir, key,
                        lambda: {"images": decode_images(source, files, image_size, "celeba")})
    attrs = attrs[rows]
    y, group, info = celeba_labels(attrs, attr_names, target, sensitive, groups, image_size)
    if partition is not None:
        parts = [np.flatnonzero(partition[rows] == p) for p in range(3)]
    else:
        parts = ordered_split(len(rows), split, keys=y * info.num_groups + group, seed=seed)
    return make_image_dataset([images["images"][p] for p in parts], [y[p] for p in parts],
                              [group[p] for p in parts], info)


def load_celeba_tfds(
    data_dir: str | os.PathLike | None = None,
    target: str = "Smiling",
    sensitive: str = "Male",
    groups: str = "attribute",
    image_size: int = 32,
    max_examples: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load a prepared TFDS ``celeb_a`` (official train/validation/test splits; never downloads).

    Labels, groups and images are as in ``load_celeba``. ``max_examples`` keeps the first records
    of each split, proportionally to the split sizes. ``seed`` is accepted for a uniform signature;
    the official splits do not depend on it. Raises ``DatasetNotFoundError`` at once when the
    dataset is not prepared in ``data_dir`` (default: TFDS's own).
    """
    del seed  # official splits
    _check_groups(groups)
    sources = open_tfds("celeb_a", ["train", "validation", "test"], data_dir, RAW_ALTERNATIVE)
    sizes = [len(sources[s]) for s in ("train", "validation", "test")]
    limits = _proportional_limits(sizes, max_examples)
    key = ("celeba_tfds", os.fspath(data_dir or "default"), tuple(sizes),
           image_size, max_examples)
    arrays = cached(cache_dir, key, lambda: _read_celeba_tfds(sources, limits, image_size))
    attr_names = tuple(str(n) for n in arrays["attr_names"])
    images, ys, gs = [], [], []
    for s in ("train", "validation", "test"):
        y, group, info = celeba_labels(arrays[f"{s}_attrs"], attr_names, target, sensitive,
                                       groups, image_size)
        images.append(arrays[f"{s}_images"])
        ys.append(y)
        gs.append(group)
    return make_image_dataset(images, ys, gs, info)


def load_celeba_auto(
    data_dir: str | os.PathLike | None = None, source: str = "auto", **kwargs
) -> Dataset:
    """``load_dataset("celeba", ...)``: raw files or TFDS, chosen by ``source``.

    ``source="auto"``: raw when ``data_dir`` is a zip or a folder holding the raw layout (itself or
    in a sub-folder), TFDS otherwise (``data_dir`` then is a TFDS data_dir, None = TFDS default).
    ``split`` is only used by the raw loader.
    """
    kind = choose_source(source, data_dir, _looks_raw, NOT_FOUND_HINT)
    if kind == "raw":
        if data_dir is None:
            raise DatasetNotFoundError(f"source='raw' needs data_dir. {NOT_FOUND_HINT}")
        return load_celeba(data_dir, **kwargs)
    kwargs.pop("split", None)
    return load_celeba_tfds(data_dir, **kwargs)


def parse_attributes(text: str) -> tuple[list[str], tuple[str, ...], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: (file names, attribute names, bool [N, A] of value == +1).

    Line 1 is the row count, line 2 the attribute names, then ``000001.jpg -1 1 ...`` rows.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    attr_names = tuple(lines[1].split())
    names, values = [], []
    for line in lines[2:]:
        fields = line.split()
        names.append(fields[0])
        values.append([int(v) > 0 for v in fields[1 : 1 + len(attr_names)]])
    return names, attr_names, np.array(values, dtype=bool).reshape(len(names), len(attr_names))


def parse_partition(text: str, names: Sequence[str]) -> np.ndarray:
    """Parse ``list_eval_partition.txt`` (``000001.jpg 0``) into an int array aligned to ``names``.

    0 = train, 1 = val, 2 = test. Files missing from the partition file raise ``ValueError``.
    """
    by_name = dict(line.split()[:2] for line in text.splitlines() if line.strip())
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{PARTITION_FILE} lacks {len(missing)} files, e.g. {missing[0]!r}")
    return np.array([int(by_name[n]) for n in names], dtype=np.int32)


def select_rows(
    num_rows: int, partition: np.ndarray | None, max_examples: int | None
) -> np.ndarray:
    """Indices of the rows to load: the first ``max_examples`` (per partition, proportionally)."""
    if max_examples is None or max_examples >= num_rows:
        return np.arange(num_rows)
    if partition is None:
        return np.arange(max_examples)
    members = [np.flatnonzero(partition == p) for p in range(3)]
    limits = _proportional_limits([len(m) for m in members], max_examples)
    return np.sort(np.concatenate([m[:k] for m, k in zip(members, limits)]))


def ordered_split(
    num_rows: int, split: tuple[float, float], keys: np.ndarray, seed: int
) -> list[np.ndarray]:
    """(train, val, test) indices: the last ``test_fraction`` rows are test; val is carved from the
    rest with ``carve_val`` (fraction ``val_fraction``, stratified by ``keys``, random in ``seed``).
    """
    val_fraction, test_fraction = split
    num_test = int(round(num_rows * test_fraction))
    rest = np.arange(num_rows - num_test)
    train, val = carve_val(rest, keys, val_fraction, seed)
    return [train, val, np.arange(num_rows - num_test, num_rows)]


def celeba_labels(
    attrs: np.ndarray,
    attr_names: Sequence[str],
    target: str,
    sensitive: str,
    groups: str,
    image_size: int,
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """(y, group, info) from a bool attribute matrix; see ``load_celeba`` for the group modes."""
    for name in (target, sensitive):
        if name not in attr_names and not (name == sensitive == LABEL):
            raise ValueError(f"unknown CelebA attribute {name!r}; valid: {', '.join(attr_names)}"
                             + (f" (or sensitive={LABEL!r})" if name == sensitive else ""))
    y = attrs[:, list(attr_names).index(target)].astype(np.int32)
    if sensitive == LABEL:
        if groups == "cell":
            raise ValueError(f"groups='cell' with sensitive={LABEL!r} would give the cells "
                             f"2 * y + y (two of them always empty); use groups='attribute'")
        return y, y.copy(), DatasetInfo("celeba", 2, 2, binary_group_names(target),
                                        binary_group_names(target), (image_size, image_size, 3))
    attribute = attrs[:, list(attr_names).index(sensitive)].astype(np.int32)
    if groups == "cell":
        group, group_names = 2 * y + attribute, cell_group_names(target, sensitive)
    else:
        group, group_names = attribute, binary_group_names(sensitive)
    info = DatasetInfo("celeba", 2, len(group_names), group_names, binary_group_names(target),
                       (image_size, image_size, 3))
    return y, group, info


def _read_celeba_tfds(sources: dict, limits: Sequence[int], image_size: int) -> dict:
    """Decode the first ``limits[i]`` records of each TFDS split into images + attribute arrays."""
    attr_names = tuple(sources["train"].dataset_info.features["attributes"].keys())
    arrays = {"attr_names": np.array(attr_names, dtype=str)}
    for s, limit in zip(("train", "validation", "test"), limits):
        images = np.empty((limit, image_size, image_size, 3), np.uint8)
        attrs = np.zeros((limit, len(attr_names)), bool)
        for i, record in enumerate(iter_records(sources[s], range(limit), f"celeba tfds {s}")):
            images[i] = array_to_image(record["image"], image_size)
            attrs[i] = [bool(record["attributes"][n]) for n in attr_names]
        arrays[f"{s}_images"], arrays[f"{s}_attrs"] = images, attrs
    return arrays


def _proportional_limits(sizes: Sequence[int], max_examples: int | None) -> list[int]:
    """How many of each part to keep so that about ``max_examples`` are kept in total."""
    total = sum(sizes)
    if max_examples is None or max_examples >= total:
        return list(sizes)
    return [min(n, int(round(max_examples * n / total))) for n in sizes]


def _looks_raw(path: str) -> bool:
    """Whether ``path`` is a zip, or a folder with the raw layout (itself or one level down)."""
    if os.path.isfile(path):
        return True
    with FileSource(path) as source:
        return source.locate(ATTR_FILE) is not None


def _check_groups(groups: str) -> None:
    if groups not in GROUP_MODES:
        raise ValueError(f"groups must be one of {GROUP_MODES}, got {groups!r}")
