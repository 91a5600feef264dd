"""Random access to *prepared* TFDS datasets without TensorFlow; never downloads anything.

``tensorflow_datasets`` is imported inside ``open_tfds`` only, so the rest of the package works
without it.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

from ballot_jax.data.base import DatasetNotFoundError, log

DEFAULT_TFDS_DIR = "~/tensorflow_datasets (or $TFDS_DATA_DIR)"


def not_prepared_message(name: str, data_dir: str | None, alternative: str, cause: object) -> str:
    """The DatasetNotFoundError text for a TFDS dataset that is not prepared in ``data_dir``."""
    where = data_dir if data_dir is not None else DEFAULT_TFDS_DIR
    return (
        f"TFDS dataset {name!r} is not prepared (as array_record) in data_dir={where!r}; "
        f"ballot_jax never downloads data.\n"
        f"Fix, one of:\n"
        f"  * TFDS: prepare it once on a machine with network access, e.g.\n"
        f"      tfds build {name} --data_dir=/path/to/tfds --file_format=array_record\n"
        f"    then pass data_dir='/path/to/tfds' (and source='tfds').\n"
        f"  * {alternative}\n"
        f"(TFDS said: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"
    )


def open_tfds(
    name: str, splits: Sequence[str], data_dir: str | os.PathLike | None, alternative: str
) -> dict:
    """Random-access data sources ``{split: source}`` of the prepared TFDS dataset ``name``.

    Each source supports ``len()`` and ``source[i] -> dict of NumPy values``. ``alternative`` is
    a sentence describing the non-TFDS way to load the data, included in the error message.

    Raises:
      DatasetNotFoundError: the dataset is not prepared in ``data_dir`` (raised at once; no
        download is ever attempted).
      ImportError: tensorflow_datasets is not installed.
    """
    try:
        import tensorflow_datasets as tfds  # Lazy: only TFDS users pay for the import.
    except ImportError as err:
        raise ImportError(
            f"source='tfds' needs tensorflow-datasets (pip install tensorflow-datasets). "
            f"{alternative}"
        ) from err
    data_dir = None if data_dir is None else os.fspath(data_dir)
    try:
        return tfds.data_source(
            name, split={s: s for s in splits}, data_dir=data_dir, download=False
        )
    except Exception as err:  # TFDS raises KeyError, NotImplementedError, AssertionError, ...
        raise DatasetNotFoundError(not_prepared_message(name, data_dir, alternative, err)) from err


def iter_records(source, indices: Sequence[int], label: str) -> Iterator[dict]:
    """Yield the records ``source[i]`` for ``i`` in ``indices``, logging progress every 2000."""
    for count, i in enumerate(indices, start=1):
        yield source[int(i)]
        if count % 2000 == 0:
            log(f"{label}: read {count}/{len(indices)} records")
