"""Shared image plumbing: files in a folder or zip, decoding, crop/resize, a decoded-array cache.

Every image loader (CelebA, CIFAR, UTKFace) reads its files through ``FileSource`` and decodes them
with ``decode_images``, so zip support, resizing and caching behave the same everywhere.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ballot_jax.data.base import DamagedArchiveError, DatasetNotFoundError, check_path_exists, log

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of a zip archive (its first local file header)
# What reading a member of a damaged archive raises (bad header, bad CRC, truncated deflate stream).
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)
PROGRESS_EVERY = 2000


class FileSource:
    """Read-only access to the files of a folder or of a ``.zip`` archive (read in place).

    Files are addressed by POSIX paths relative to the folder / archive root, e.g.
    ``"celeba/img_align_celeba/000001.jpg"``. Use as a context manager to close the archive. A
    damaged or truncated zip raises ``DamagedArchiveError`` (on opening, or on reading a member).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        self.is_zip = os.path.isfile(self.path) and (zipfile.is_zipfile(self.path) or _looks_like_zip(self.path))
        if not self.is_zip and not os.path.isdir(self.path):
            raise NotADirectoryError(f"{self.path!r} is neither a folder nor a zip archive")
        try:
            self._zip = zipfile.ZipFile(self.path) if self.is_zip else None
        except zipfile.BadZipFile as err:
            raise self._damaged(err) from None
        self._zip_names: set[str] | None = None

    def _damaged(self, err: Exception, member: str | None = None) -> DamagedArchiveError:
        where = f" (reading {member})" if member else ""
        return DamagedArchiveError(
            f"{self.path!r} is a damaged zip archive{where}: {err}. It was probably truncated or "
            "corrupted by an interrupted copy or download: copy it again."
        )

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip archive (no-op for folders)."""
        if self._zip is not None:
            self._zip.close()

    def _all_zip_names(self) -> set[str]:
        if self._zip_names is None:
            self._zip_names = {n for n in self._zip.namelist() if not n.endswith("/")}
        return self._zip_names

    def exists(self, name: str) -> bool:
        """Whether the file ``name`` exists."""
        if self.is_zip:
            return name in self._all_zip_names()
        return os.path.isfile(os.path.join(self.path, name))

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``."""
        if self.is_zip:
            try:
                return self._zip.read(name)
            except ZIP_READ_ERRORS as err:
                raise self._damaged(err, name) from None
        with open(os.path.join(self.path, name), "rb") as f:
            return f.read()

    def list_files(self, prefix: str = "") -> list[str]:
        """All files below folder ``prefix`` ("" or ending in "/"), recursively, sorted."""
        if self.is_zip:
            return sorted(n for n in self._all_zip_names() if n.startswith(prefix))
        top = os.path.join(self.path, prefix)
        names = []
        for dirpath, _, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, self.path).replace(os.sep, "/")
            rel = "" if rel == "." else rel + "/"
            names.extend(rel + f for f in filenames)
        return sorted(names)

    def subdirs(self, prefix: str = "") -> list[str]:
        """Names of the immediate sub-folders of folder ``prefix``, sorted."""
        if self.is_zip:
            found = {n[len(prefix):].split("/", 1)[0] for n in self._all_zip_names()
                     if n.startswith(prefix) and "/" in n[len(prefix):]}
            return sorted(found)
        top = os.path.join(self.path, prefix)
        if not os.path.isdir(top):
            return []
        return sorted(d for d in os.listdir(top) if os.path.isdir(os.path.join(top, d)))

    def locate(self, marker: str) -> str | None:
        """The prefix ("" or "<sub-folder>/") under which ``marker`` exists, or None.

        ``marker`` is a file name, or a folder name ending in "/". The root is checked first, then
        its immediate sub-folders (so both a dataset folder and its parent work).
        """
        for prefix in ["", *(d + "/" for d in self.subdirs())]:
            if marker.endswith("/") and marker[:-1] in self.subdirs(prefix):
                return prefix
            if not marker.endswith("/") and self.exists(prefix + marker):
                return prefix
        return None

    def fingerprint(self, name: str) -> str:
        """Identity of the data for cache keys: the archive's path and size, or ``name``'s."""
        path = self.path if self.is_zip else os.path.join(self.path, name)
        return f"{path}:{os.path.getsize(path)}"


def _looks_like_zip(path: str) -> bool:
    """Whether the file is named or starts like a zip archive (a truncated zip still does, though
    ``zipfile.is_zipfile`` rejects it: its central directory at the end is gone)."""
    if path.lower().endswith(".zip"):
        return True
    with open(path, "rb") as f:
        return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def open_source(path: str | os.PathLike, hint: str) -> FileSource:
    """Open ``path`` as a ``FileSource``; raise ``DatasetNotFoundError`` (with ``hint``) if it is
    missing or is neither a folder nor a zip archive."""
    path = check_path_exists(path, hint)
    try:
        return FileSource(path)
    except NotADirectoryError as err:
        raise DatasetNotFoundError(f"{err}.\n{hint}") from err


def crop_resize(img: Image.Image, image_size: int | None) -> np.ndarray:
    """Centre-crop ``img`` to a square and resize it (bilinear) to ``image_size``; uint8 HxWx3.

    With ``image_size=None`` the image is returned unchanged (as RGB).
    """
    img = img.convert("RGB")
    if image_size is not None:
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != image_size:
            img = img.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_image(data: bytes, image_size: int | None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) into a uint8 HxWx3 array; see ``crop_resize``."""
    with Image.open(io.BytesIO(data)) as img:
        if image_size is not None:
            # JPEG only: let the decoder downscale by a power of two, keeping >= 2x the target size.
            img.draft("RGB", (2 * image_size, 2 * image_size))
        return crop_resize(img, image_size)


def array_to_image(array: np.ndarray, image_size: int | None) -> np.ndarray:
    """Crop/resize an already decoded uint8 HxWxC array (e.g. from TFDS); see ``crop_resize``."""
    return crop_resize(Image.fromarray(np.asarray(array, np.uint8).squeeze()), image_size)


def decode_images(
    source: FileSource, names: Sequence[str], image_size: int | None, label: str = "images"
) -> np.ndarray:
    """Decode the files ``names`` of ``source`` into one uint8 [N, H, W, 3] array.

    Prints a progress line to stderr every ``PROGRESS_EVERY`` images. Images must all have the same
    size after resizing (always true when ``image_size`` is set).
    """
    images = (decode_image(source.read(n), image_size) for n in names)
    return stack_images(images, len(names), image_size, label)


def stack_images(images, count: int, image_size: int | None, label: str = "images") -> np.ndarray:
    """Stack ``count`` uint8 HxWx3 arrays from the iterable ``images``, logging progress.

    ``image_size`` only fixes the shape of an empty result.
    """
    out = None
    for i, image in enumerate(images):
        if out is None:
            out = np.empty((count, *image.shape), np.uint8)
        out[i] = image
        if (i + 1) % PROGRESS_EVERY == 0:
            log(f"{label}: decoded {i + 1}/{count}")
    if out is None:
        side = image_size or 0
        return np.zeros((0, side, side, 3), np.uint8)
    return out


def cached(
    cache_dir: str | os.PathLike | None,
    key: Sequence[object],
    compute: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Return ``compute()``, stored as ``<cache_dir>/<key[0]>-<hash(key)>.npz`` and reused later.

    ``key`` must identify the result (source file + its size, image size, example limit, ...).
    With ``cache_dir=None`` nothing is stored. An unreadable cache file is recomputed.
    """
    if cache_dir is None:
        return compute()
    digest = hashlib.sha256(repr(tuple(key)).encode()).hexdigest()[:16]
    path = os.path.join(os.fspath(cache_dir), f"{key[0]}-{digest}.npz")
    if os.path.exists(path):
        try:
            with np.load(path) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            log(f"ignoring unreadable cache file {path}")
    arrays = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    log(f"cached decoded arrays in {path}")
    return arrays
