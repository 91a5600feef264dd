"""Dataset loaders: NumPy arrays out, as ``Dataset(train, val, test, info)`` of ``Split``s.

``load_dataset(name, **kwargs)`` dispatches to one loader per dataset. Images come out float32
NHWC, scaled to [0, 1] and standardised per channel with the train split's mean/std. Splits are
fixed by ``seed`` (default 0). TFDS is imported lazily, only by the TFDS loaders, which never
download. Missing data raises ``DatasetNotFoundError`` with instructions; a damaged or truncated
zip raises ``DamagedArchiveError``.
"""

from __future__ import annotations

from typing import Callable

from ballot_jax.data.base import DamagedArchiveError, Dataset, DatasetInfo, DatasetNotFoundError, Split
from ballot_jax.data.celeba import load_celeba, load_celeba_auto, load_celeba_tfds
from ballot_jax.data.cifar import (
    load_cifar,
    load_cifar10,
    load_cifar10_lt,
    load_cifar100,
    load_cifar_folder,
    load_cifar_tfds,
)
from ballot_jax.data.digits import load_digits
from ballot_jax.data.synthetic import make_synthetic_biased
from ballot_jax.data.tinyimagenet import load_tinyimagenet
from ballot_jax.data.utkface import load_utkface

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "synthetic": make_synthetic_biased,
    "celeba": load_celeba_auto,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "utkface": load_utkface,
    "cifar10_lt": load_cifar10_lt,
    "tinyimagenet": load_tinyimagenet,
}


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load dataset ``name`` (one of ``LOADERS``), passing ``kwargs`` to its loader.

    "digits": ``load_digits``; "synthetic": ``make_synthetic_biased``; "celeba":
    ``load_celeba_auto`` (``source="auto"|"raw"|"tfds"``); "cifar10"/"cifar100": ``load_cifar``
    (``source`` likewise; ``imbalance_ratio`` > 1 makes train long-tailed); "utkface":
    ``load_utkface``; "cifar10_lt": ``load_cifar10_lt`` (long-tailed CIFAR-10, ratio 10 by
    default); "tinyimagenet": ``load_tinyimagenet`` (raw folder or zip).
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(LOADERS)}")
    return LOADERS[name](**kwargs)


__all__ = [
    "LOADERS",
    "DamagedArchiveError",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "Split",
    "load_celeba",
    "load_celeba_auto",
    "load_celeba_tfds",
    "load_cifar",
    "load_cifar10",
    "load_cifar10_lt",
    "load_cifar100",
    "load_cifar_folder",
    "load_cifar_tfds",
    "load_dataset",
    "load_digits",
    "load_tinyimagenet",
    "load_utkface",
    "make_synthetic_biased",
]
