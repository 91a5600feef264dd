"""scikit-learn's bundled 8x8 handwritten digits (1797 images, no download): a tiny real dataset;
``imbalance_ratio`` > 1 makes its train split long-tailed (digits-LT, a class-imbalance setting)."""

from __future__ import annotations

import numpy as np

from ballot_jax.data.base import Dataset, DatasetInfo, make_split, standardize, stratified_split
from ballot_jax.data.long_tail import check_imbalance_ratio, long_tail_indices

CLASS_NAMES = tuple(str(d) for d in range(10))


def load_digits(
    seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2, imbalance_ratio: float = 1.0
) -> Dataset:
    """Load sklearn's digits as [N, 8, 8, 1] images; 10 classes, and groups = classes.

    The split is stratified by class and fixed by ``seed``. ``imbalance_ratio`` > 1 then keeps a
    ``seed``-random long-tailed subset of the train split (``long_tail_indices``: digit 0 the head
    with its ~126 train images, digit 9 the tail with 1/ratio of that); validation and test stay
    balanced. Pixels (0..16) are scaled to [0, 1], then standardised with the train split's mean/std.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = bunch.data.reshape(-1, 8, 8, 1).astype(np.float32) / np.float32(16.0)
    y = bunch.target.astype(np.int32)
    parts = stratified_split(y, val_fraction, test_fraction, seed)
    if check_imbalance_ratio(imbalance_ratio) > 1:
        train = parts[0]
        parts = (train[long_tail_indices(y[train], imbalance_ratio, seed, num_classes=10)], *parts[1:])
    xs = standardize(*(x[idx] for idx in parts))
    train, val, test = (make_split(xi, y[idx], y[idx]) for xi, idx in zip(xs, parts))
    info = DatasetInfo("digits", 10, 10, CLASS_NAMES, CLASS_NAMES, (8, 8, 1))
    return Dataset(train, val, test, info)
