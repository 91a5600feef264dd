"""Long-tailed subsets of a labelled split (class-imbalance settings such as CIFAR-10-LT of Cao et
al. 2019 and Cui et al. 2019): the exponential profile ``n_c = floor(n_max * ratio ** (-c / (C - 1)))``
and a seeded per-class subset that follows it. Used by the CIFAR and digits loaders on their train
split (validation and test stay balanced)."""

from __future__ import annotations

import numpy as np


def check_imbalance_ratio(imbalance_ratio: float) -> float:
    """``imbalance_ratio`` as a float; raises ``ValueError`` unless it is finite and >= 1."""
    ratio = float(imbalance_ratio)
    if not (np.isfinite(ratio) and ratio >= 1.0):
        raise ValueError(f"imbalance_ratio must be a finite number >= 1 (1 = balanced), got "
                         f"{imbalance_ratio!r}")
    return ratio


def long_tail_counts(n_max: int, num_classes: int, imbalance_ratio: float) -> np.ndarray:
    """Exponential long-tail profile: ``n_c = floor(n_max * imbalance_ratio ** (-c / (C - 1)))``.

    int64 [C]; class 0 keeps ``n_max``, class C-1 ``floor(n_max / imbalance_ratio)``; every class
    keeps at least one example (when ``n_max`` >= 1). Cao et al. 2019 (LDAM), Cui et al. 2019.
    """
    ratio = check_imbalance_ratio(imbalance_ratio)
    if num_classes < 1 or n_max < 0:
        raise ValueError(f"need num_classes >= 1 and n_max >= 0, got {num_classes}, {n_max}")
    exponent = np.arange(num_classes) / max(num_classes - 1, 1)
    # + 1e-9: 4500 * 10 ** -1 is 450.00000000000006 but other products land just below the integer
    counts = np.floor(n_max * ratio ** -exponent + 1e-9).astype(np.int64)
    return np.minimum(np.maximum(counts, min(1, n_max)), n_max)


def long_tail_indices(
    labels: np.ndarray, imbalance_ratio: float, seed: int, num_classes: int | None = None
) -> np.ndarray:
    """Sorted indices into ``labels`` of a long-tailed subset (see ``long_tail_counts``).

    ``n_max`` is the largest class count in ``labels``; class ``c`` keeps a ``seed``-random subset
    of ``min(n_c, available)`` of its examples. ``imbalance_ratio=1`` keeps everything.
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    available = np.bincount(labels, minlength=num_classes)
    targets = long_tail_counts(int(available.max(initial=0)), num_classes, imbalance_ratio)
    rng = np.random.default_rng([seed, 0x17])  # a stream of its own, not the val split's
    kept = [rng.permutation(np.flatnonzero(labels == c))[: targets[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(kept)).astype(np.int64)
