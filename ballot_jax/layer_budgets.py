"""Per-layer kept counts for a global budget: Erdős–Rényi–Kernel densities and the exact integer
split of a budget over layers (host-side, pure; used by dynamic sparse training and edge-popup)."""

from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from ballot_jax.masks import Mask, mask_leaves
from ballot_jax.pruning import num_keep_for_sparsity


def distribute_keep_counts(sizes: Sequence[int], weights: Sequence[float], num_keep: int) -> list[int]:
    """Integer kept counts per layer with density_l proportional to ``weights[l]``, summing to ``num_keep``.

    Solves ε in density_l = ε·weights[l] so that Σ_l density_l·sizes[l] = num_keep; a layer whose
    density would exceed 1 is made dense (kept whole) and ε is solved again over the others, until no
    density exceeds 1 (densifying a layer only raises ε, so all such layers are taken at once). Real
    counts are rounded by the largest-remainder method (floors, then +1 to the largest fractional
    parts, ties to the earlier layer), so the total is exactly ``num_keep`` and no count exceeds
    its layer's size. Host-side, pure.
    """
    sizes = [int(s) for s in sizes]
    weights = [float(w) for w in weights]
    if len(sizes) != len(weights):
        raise ValueError(f"sizes and weights differ in length: {len(sizes)} vs {len(weights)}")
    if any(s < 0 for s in sizes) or any(not w > 0 for w in weights):
        raise ValueError("sizes must be >= 0 and weights > 0")
    if not 0 <= num_keep <= sum(sizes):
        raise ValueError(f"num_keep must be in [0, {sum(sizes)}], got {num_keep}")
    dense = [s == 0 for s in sizes]  # empty layers count as dense (they keep their 0 entries)
    eps = 0.0
    while True:
        budget = num_keep - sum(s for s, d in zip(sizes, dense) if d)
        denom = sum(w * s for w, s, d in zip(weights, sizes, dense) if not d)
        eps = budget / denom if denom > 0 else 0.0
        over = [i for i, d in enumerate(dense) if not d and eps * weights[i] > 1.0]
        if not over:
            break
        for i in over:
            dense[i] = True
    real = [float(s) if d else min(float(s), eps * w * s) for s, w, d in zip(sizes, weights, dense)]
    counts = [min(s, math.floor(r)) for s, r in zip(sizes, real)]
    order = sorted(range(len(sizes)), key=lambda i: (-(real[i] - counts[i]), i))
    remainder = num_keep - sum(counts)
    while remainder > 0:  # one pass suffices up to float error; loop for safety
        for i in order:
            if remainder and counts[i] < sizes[i]:
                counts[i] += 1
                remainder -= 1
    while remainder < 0:  # float error the other way: take back from the smallest fractions
        for i in reversed(order):
            if remainder and counts[i] > 0:
                counts[i] -= 1
                remainder += 1
    return counts


def erk_keep_counts(mask: Mask, sparsity: float) -> list[int]:
    """Erdős–Rényi–Kernel kept counts per prunable leaf (tree-flatten order) at global ``sparsity``.

    density_l ∝ (Σ_d shape_l[d]) / (Π_d shape_l[d]) (for a conv kernel all four dimensions count),
    layers that would exceed density 1 are dense and the rest is redistributed; the counts sum to
    exactly ``num_keep_for_sparsity(N, sparsity)`` (see ``distribute_keep_counts``). Small layers get
    higher densities. Uses only the leaves' shapes.
    """
    leaves = mask_leaves(mask)
    shapes = [tuple(int(d) for d in jnp.shape(m)) for m in leaves]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    weights = [sum(s) / n if n else 1.0 for s, n in zip(shapes, sizes)]
    return distribute_keep_counts(sizes, weights, num_keep_for_sparsity(sum(sizes), sparsity))


__all__ = ["distribute_keep_counts", "erk_keep_counts"]
