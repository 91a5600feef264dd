"""Tiny ImageNet (``tiny-imagenet-200``): 200 ImageNet classes, 64x64 RGB; groups = classes.

Layout of the official download (a folder, its parent folder, or the ``.zip`` read in place)::

    tiny-imagenet-200/wnids.txt                        the 200 WordNet ids, one a line
    tiny-imagenet-200/words.txt                        "<wnid>\\t<name>, <synonym>, ..." (optional)
    tiny-imagenet-200/train/<wnid>/images/*.JPEG       500 images per class
    tiny-imagenet-200/val/images/*.JPEG                50 per class, labelled by
    tiny-imagenet-200/val/val_annotations.txt          "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"
    tiny-imagenet-200/test/images/*.JPEG               unlabelled: ignored

The official test set has no labels, so the official **val** set is our **test** split, and our
val split is a ``seed``-random, class-stratified ``val_fraction`` of train. Class ids follow the
sorted WordNet ids (the order of ``torchvision.datasets.ImageFolder`` on ``train/``); class and
group names are the first synonym in ``words.txt`` (the wnid when absent; a name shared by two
classes gets its wnid appended). Grayscale images are converted to RGB.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from ballot_jax.data.base import Dataset, DatasetInfo, DatasetNotFoundError, carve_val, make_image_dataset
from ballot_jax.data.images import IMAGE_EXTENSIONS, FileSource, cached, decode_images, open_source

WNIDS_FILE = "wnids.txt"
WORDS_FILE = "words.txt"
VAL_ANNOTATIONS = "val/val_annotations.txt"
HINT = (
    "Tiny ImageNet not found. Pass data_dir= the tiny-imagenet-200 folder (holding train/, "
    f"val/images/, {VAL_ANNOTATIONS} and {WNIDS_FILE}), its parent folder, or "
    "tiny-imagenet-200.zip (read in place), e.g. "
    "load_dataset('tinyimagenet', data_dir='/data/tiny-imagenet-200.zip')."
)


def load_tinyimagenet(
    data_dir: str | os.PathLike,
    max_per_class: int | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load Tiny ImageNet from its raw folder or zip (see the module docstring).

    ``max_per_class`` keeps the first files (sorted by name) of every class in train and in the
    official val set (our test). ``image_size=None`` keeps the stored 64x64; otherwise images are
    centre-cropped and resized (bilinear). Images are scaled to [0, 1] and standardised per channel
    with our train split's statistics. ``cache_dir`` stores the decoded images.
    """
    path = os.path.abspath(os.fspath(data_dir))
    with open_source(path, HINT) as source:
        prefix = source.locate(VAL_ANNOTATIONS)
        if prefix is None or not source.subdirs(prefix + "train/"):
            raise DatasetNotFoundError(
                f"No train/<wnid>/ folders and {VAL_ANNOTATIONS} in {path!r} or a sub-folder. {HINT}")
        wnids = _wnids(source, prefix)
        class_names = _class_names(source, prefix, wnids)
        files, labels = _files(source, prefix, wnids, max_per_class)
        key = ("tinyimagenet", source.fingerprint(prefix + VAL_ANNOTATIONS), len(files["train"]),
               len(files["test"]), image_size, max_per_class)
        arrays = cached(cache_dir, key, lambda: {
            s: decode_images(source, files[s], image_size, f"tinyimagenet {s}")
            for s in ("train", "test")
        })
    train, val = carve_val(np.arange(len(labels["train"])), labels["train"], val_fraction, seed)
    images = [arrays["train"][train], arrays["train"][val], arrays["test"]]
    ys = [labels["train"][train], labels["train"][val], labels["test"]]
    info = DatasetInfo("tinyimagenet", len(wnids), len(wnids), class_names, class_names,
                       tuple(arrays["train"].shape[1:]))
    return make_image_dataset(images, ys, ys, info)


def _wnids(source: FileSource, prefix: str) -> tuple[str, ...]:
    """The class wnids, sorted: from ``wnids.txt`` when present, else the ``train/`` sub-folders."""
    folders = source.subdirs(prefix + "train/")
    if not source.exists(prefix + WNIDS_FILE):
        return tuple(folders)
    wnids = sorted({line.strip() for line in source.read(prefix + WNIDS_FILE).decode().splitlines()
                    if line.strip()})
    missing = sorted(set(wnids) - set(folders))
    if missing:
        raise DatasetNotFoundError(
            f"{WNIDS_FILE} lists {len(missing)} class(es) without a train/<wnid>/ folder, e.g. "
            f"{missing[0]!r}. {HINT}")
    return tuple(wnids)


def _class_names(source: FileSource, prefix: str, wnids: tuple[str, ...]) -> tuple[str, ...]:
    """First ``words.txt`` synonym of each wnid (the wnid itself when absent); made unique."""
    words: dict[str, str] = {}
    if source.exists(prefix + WORDS_FILE):
        wanted = set(wnids)
        for line in source.read(prefix + WORDS_FILE).decode(errors="replace").splitlines():
            wnid, _, text = line.partition("\t")
            if wnid.strip() in wanted and text.strip():
                words[wnid.strip()] = text.split(",")[0].strip()
    names = [words.get(w, w) for w in wnids]
    counts = defaultdict(int)
    for n in names:
        counts[n] += 1
    return tuple(n if counts[n] == 1 or n == w else f"{n} ({w})" for n, w in zip(names, wnids))


def _files(
    source: FileSource, prefix: str, wnids: tuple[str, ...], max_per_class: int | None
) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Image paths and labels of train (``train/<wnid>/images/``) and test (the official val)."""
    index = {w: i for i, w in enumerate(wnids)}
    train: dict[str, list[str]] = defaultdict(list)
    for name in source.list_files(prefix + "train/"):
        parts = name[len(prefix) + len("train/"):].split("/")
        if (len(parts) == 3 and parts[1] == "images" and parts[0] in index
                and parts[2].lower().endswith(IMAGE_EXTENSIONS)):
            train[parts[0]].append(name)
    empty = [w for w in wnids if not train[w]]
    if empty:
        raise DatasetNotFoundError(f"No images in train/{empty[0]}/images/ ({len(empty)} such "
                                   f"classes). {HINT}")
    test: dict[str, list[str]] = defaultdict(list)
    for line in source.read(prefix + VAL_ANNOTATIONS).decode().splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        file_name, wnid = fields[0], fields[1]
        if wnid not in index:
            raise DatasetNotFoundError(
                f"{VAL_ANNOTATIONS} labels {file_name!r} with {wnid!r}, which is not a train class. "
                f"{HINT}")
        member = f"{prefix}val/images/{file_name}"
        if not source.exists(member):
            raise DatasetNotFoundError(f"{VAL_ANNOTATIONS} lists {member!r}, which is missing. {HINT}")
        test[wnid].append(member)
    files, labels = {}, {}
    for split, buckets in (("train", train), ("test", test)):
        per_class = [sorted(buckets[w])[:max_per_class] for w in wnids]
        files[split] = [f for group in per_class for f in group]
        labels[split] = np.repeat(np.arange(len(wnids)), [len(g) for g in per_class])
    return files, labels

