"""UTKFace: face images whose file names carry the labels, ``age_gender_race_date.jpg.chip.jpg``.

Attributes (usable as ``target`` or ``sensitive``):

* ``gender``: 0 male, 1 female.
* ``race``: 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others.
* ``age_bucket``: 0 "<20" (age 0-19), 1 "20-39", 2 "40-59", 3 "60+".

Files whose names do not parse (missing fields, age not an integer, gender not 0/1, race not
0..4) are skipped; one warning line reports how many.
"""

from __future__ import annotations

import os

import numpy as np

from ballot_jax.data.base import (
    Dataset,
    DatasetInfo,
    DatasetNotFoundError,
    log,
    make_image_dataset,
    stratified_split,
)
from ballot_jax.data.images import IMAGE_EXTENSIONS, FileSource, cached, decode_images, open_source

AGE_EDGES = (20, 40, 60)
ATTRIBUTE_NAMES = {
    "gender": ("male", "female"),
    "race": ("White", "Black", "Asian", "Indian", "Others"),
    "age_bucket": ("<20", "20-39", "40-59", "60+"),
}
NOT_FOUND_HINT = (
    "UTKFace not found. Pass data_dir= a folder or .zip containing the images named "
    "age_gender_race_date.jpg.chip.jpg (e.g. the extracted UTKFace/ folder), searched recursively."
)


def parse_utkface_name(filename: str) -> dict[str, int] | None:
    """``{"age", "gender", "race", "age_bucket"}`` from a UTKFace file name; None if malformed."""
    fields = filename.rsplit("/", 1)[-1].split("_")
    if len(fields) < 4 or not all(f.isdigit() for f in fields[:3]):
        return None
    age, gender, race = (int(f) for f in fields[:3])
    if gender not in (0, 1) or not 0 <= race <= 4:
        return None
    return {"age": age, "gender": gender, "race": race,
            "age_bucket": int(np.searchsorted(AGE_EDGES, age, side="right"))}


def load_utkface(
    data_dir: str | os.PathLike,
    target: str = "gender",
    sensitive: str = "race",
    image_size: int = 32,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    max_examples: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load UTKFace from a folder or zip (images found recursively; see the module docstring).

    ``target`` and ``sensitive`` are attribute names (``gender``, ``race``, ``age_bucket``); the
    group is the sensitive attribute. Images are centre-cropped and resized to ``image_size``.
    ``max_examples`` keeps the first valid files in sorted path order. The split is stratified by
    (class, group) and fixed by ``seed``; ``cache_dir`` stores the decoded images.
    """
    for name in (target, sensitive):
        if name not in ATTRIBUTE_NAMES:
            raise ValueError(f"unknown UTKFace attribute {name!r}; valid: {list(ATTRIBUTE_NAMES)}")
    if target == sensitive:
        raise ValueError(f"target and sensitive must differ, both are {target!r}")
    path = os.path.abspath(os.fspath(data_dir))
    with open_source(path, NOT_FOUND_HINT) as source:
        files, labels = _valid_files(source)
        if not files:
            raise DatasetNotFoundError(f"No UTKFace images in {path!r}. {NOT_FOUND_HINT}")
        files, labels = files[:max_examples], labels[:max_examples]
        key = ("utkface", source.fingerprint(files[0]), len(files), image_size, max_examples)
        images = cached(cache_dir, key,
                        lambda: {"images": decode_images(source, files, image_size, "utkface")})
    y = np.array([lab[target] for lab in labels], np.int32)
    group = np.array([lab[sensitive] for lab in labels], np.int32)
    group_names = ATTRIBUTE_NAMES[sensitive]
    parts = stratified_split(y * len(group_names) + group, val_fraction, test_fraction, seed)
    info = DatasetInfo("utkface", len(ATTRIBUTE_NAMES[target]), len(group_names), group_names,
                       ATTRIBUTE_NAMES[target], (image_size, image_size, 3))
    return make_image_dataset([images["images"][p] for p in parts], [y[p] for p in parts],
                              [group[p] for p in parts], info)


def _valid_files(source: FileSource) -> tuple[list[str], list[dict[str, int]]]:
    """Image files with parseable names (sorted) and their labels; warns once about the others."""
    files, labels, malformed = [], [], []
    for name in source.list_files():
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        parsed = parse_utkface_name(name)
        if parsed is None:
            malformed.append(name)
        else:
            files.append(name)
            labels.append(parsed)
    if malformed:
        log(f"utkface: skipped {len(malformed)} files with malformed names (expected "
            f"age_gender_race_date.jpg.chip.jpg), e.g. {malformed[0]!r}")
    return files, labels
