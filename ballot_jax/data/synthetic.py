"""A tiny synthetic dataset with a built-in fairness problem, for fast tests of the library."""

from __future__ import annotations

import math

import numpy as np

from ballot_jax.data.base import Dataset, DatasetInfo, make_split, standardize


def make_synthetic_biased(
    num_train: int = 2000,
    num_val: int = 500,
    num_test: int = 1000,
    num_classes: int = 2,
    num_groups: int = 2,
    minority_fraction: float = 0.1,
    spurious_strength: float = 3.0,
    core_strength: float = 1.0,
    input_shape: tuple[int, ...] = (8, 8, 1),
    balanced_test: bool = True,
    seed: int = 0,
) -> Dataset:
    """A dataset where an unfair model does worse on the under-represented groups.

    Group 0 is the majority; groups 1.. share ``minority_fraction`` of the train and val examples
    (the test split has equally many examples per group when ``balanced_test``). The features are
    split into disjoint random blocks: a *core* block, a *spurious* block, and one block per
    minority group. Every example carries its class signal (strength ``core_strength``) in the
    core block. In the spurious block a majority example carries its class signal with strength
    ``spurious_strength``, a minority example the signal of the *next* class (the correlation
    breaks). A minority example carries its true class signal, with strength
    ``spurious_strength``, in its own group's block. A model fit to mostly-majority data leans on
    the spurious block and misclassifies minority examples; a fair model can use the minority
    blocks instead. Noise is N(0, 1) per feature; x is then standardised with train statistics.
    Classes are uniform within every group. Deterministic in ``seed``; takes milliseconds.
    """
    if num_groups < 2 or num_classes < 2:
        raise ValueError(f"need num_groups, num_classes >= 2; got {num_groups}, {num_classes}")
    dim = math.prod(input_shape)
    if dim < num_groups + 1:
        raise ValueError(f"input_shape {input_shape} has fewer than {num_groups + 1} features")
    rng = np.random.default_rng(seed)
    prototypes = _block_prototypes(rng, dim, num_blocks=num_groups + 1, num_classes=num_classes)

    def sample(n: int, balanced: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        group = _group_ids(rng, n, num_groups, minority_fraction, balanced)
        y = rng.integers(0, num_classes, size=n)
        spurious_y = np.where(group == 0, y, (y + 1) % num_classes)
        x = rng.standard_normal((n, dim))
        x += core_strength * prototypes[0, y]
        x += spurious_strength * prototypes[1, spurious_y]
        own = group > 0
        x[own] += spurious_strength * prototypes[group[own] + 1, y[own]]
        return x.reshape(n, *input_shape).astype(np.float32), y, group

    splits = [sample(num_train, False), sample(num_val, False), sample(num_test, balanced_test)]
    xs = standardize(*(x for x, _, _ in splits))
    train, val, test = (make_split(x, y, g) for x, (_, y, g) in zip(xs, splits))
    group_names = ("majority",) + tuple(
        "minority" if num_groups == 2 else f"minority{g}" for g in range(1, num_groups)
    )
    class_names = tuple(str(c) for c in range(num_classes))
    info = DatasetInfo("synthetic", num_classes, num_groups, group_names, class_names,
                       tuple(input_shape))
    return Dataset(train, val, test, info)


def _block_prototypes(
    rng: np.random.Generator, dim: int, num_blocks: int, num_classes: int
) -> np.ndarray:
    """[num_blocks, num_classes, dim] unit-norm class directions, block b living on its features."""
    blocks = np.array_split(rng.permutation(dim), num_blocks)
    prototypes = np.zeros((num_blocks, num_classes, dim))
    for b, features in enumerate(blocks):
        directions = rng.standard_normal((num_classes, len(features)))
        directions -= directions.mean(axis=0)  # classes differ; no shared offset
        directions /= np.linalg.norm(directions, axis=1, keepdims=True) + 1e-12
        prototypes[b][:, features] = directions
    return prototypes


def _group_ids(
    rng: np.random.Generator, n: int, num_groups: int, minority_fraction: float, balanced: bool
) -> np.ndarray:
    """Shuffled group ids: equal counts if ``balanced``, else minorities share the fraction."""
    if balanced:
        counts = [len(c) for c in np.array_split(np.arange(n), num_groups)]
    else:
        num_minority = int(round(n * minority_fraction))
        minority = [len(c) for c in np.array_split(np.arange(num_minority), num_groups - 1)]
        counts = [n - num_minority, *minority]
    return rng.permutation(np.repeat(np.arange(num_groups), counts))
