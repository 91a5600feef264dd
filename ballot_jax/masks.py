"""Masks as pytrees with the params' structure.

A mask has exactly the structure of its params tree. Each leaf is either a bool array of the param's
shape (the param is prunable; ``True`` = kept) or ``None`` (the param is never pruned: biases, norm
scales, whatever the ``prunable`` filter rejects). Masks are applied functionally and never mutated.

Because ``None`` is an empty pytree to JAX, every tree-map over a mask takes the mask first and
``is_leaf=is_unprunable``; the helpers here do that for you.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
Mask = PyTree
KeyPath = tuple
Prunable = Callable[[KeyPath, Any], bool]


def is_unprunable(x: Any) -> bool:
    """True for a ``None`` mask leaf; pass as ``is_leaf`` when mapping over a mask."""
    return x is None


def default_prunable(path: KeyPath, leaf: Any) -> bool:
    """Prune kernels (ndim > 1: dense and conv weights); keep biases and norm scales (ndim <= 1)."""
    del path
    return getattr(leaf, "ndim", 0) > 1


def prunable_by_name(exclude: str, base: Prunable = default_prunable) -> Prunable:
    """A filter that applies ``base`` but never prunes leaves whose key path matches ``exclude``.

    ``exclude`` is a regular expression searched in ``jax.tree_util.keystr(path)``, e.g.
    ``prunable_by_name(r"Dense_1")`` keeps a classifier layer dense.
    """
    pattern = re.compile(exclude)

    def prunable(path: KeyPath, leaf: Any) -> bool:
        return base(path, leaf) and not pattern.search(jax.tree_util.keystr(path))

    return prunable


def make_mask(params: PyTree, prunable: Prunable = default_prunable) -> Mask:
    """All-ones mask: a bool array for every leaf where ``prunable(path, leaf)``, ``None`` elsewhere."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.ones(jnp.shape(x), dtype=bool) if prunable(path, x) else None, params
    )


def check_mask(params: PyTree, mask: Mask) -> None:
    """Raise ``ValueError`` naming the problem unless ``mask`` fits ``params`` (structure, shapes and
    dtypes; static, no device work). A ``None`` in ``params`` (no param there) needs ``None`` in the mask."""
    p_leaves, p_def = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_unprunable)
    m_leaves, m_def = jax.tree_util.tree_flatten(mask, is_leaf=is_unprunable)
    if p_def != m_def:
        raise ValueError(
            "mask tree structure differs from params:\n"
            f"  params: {p_def}\n  mask:   {m_def}\n"
            "Build the mask with ballot_jax.make_mask(params)."
        )
    for (path, p), m in zip(p_leaves, m_leaves):
        if m is None:
            continue
        if p is None:
            raise ValueError(f"mask leaf {jax.tree_util.keystr(path)} is prunable, but params have no leaf there")
        if jnp.shape(m) != jnp.shape(p):
            raise ValueError(
                f"mask leaf {jax.tree_util.keystr(path)} has shape {jnp.shape(m)}, "
                f"but the param has shape {jnp.shape(p)}"
            )
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(
                f"mask leaf {jax.tree_util.keystr(path)} has dtype {jnp.result_type(m)}; masks are bool"
            )


def apply_mask(params: PyTree, mask: Mask) -> PyTree:
    """Zero the pruned entries of ``params`` (unprunable leaves pass through). Jit-able.

    Raises :func:`check_mask`'s ``ValueError`` when ``mask`` does not fit ``params`` (a static
    check of structure, shapes and dtypes: no device work).
    """
    check_mask(params, mask)
    return jax.tree.map(
        lambda m, p: p if m is None else jnp.where(m, p, jnp.zeros_like(p)),
        mask,
        params,
        is_leaf=is_unprunable,
    )


def map_prunable_with_keys(fn: Callable[[jax.Array, jax.Array], Any], key: jax.Array, mask: Mask) -> PyTree:
    """``fn(fold_in(key, i), leaf)`` for the i-th prunable leaf of ``mask``, ``None`` elsewhere.

    The one way this library draws per-leaf randomness (random masks, scores), so equal keys give
    equal draws everywhere.
    """
    leaves, treedef = jax.tree.flatten(mask, is_leaf=is_unprunable)
    out, i = [], 0
    for m in leaves:
        if m is None:
            out.append(None)
            continue
        out.append(fn(jax.random.fold_in(key, i), m))
        i += 1
    return jax.tree.unflatten(treedef, out)


def mask_leaves(mask: Mask) -> list[jax.Array]:
    """The prunable (non-``None``) leaves of ``mask``, in tree-flatten order."""
    return [m for m in jax.tree.leaves(mask, is_leaf=is_unprunable) if m is not None]


def num_prunable(mask: Mask) -> int:
    """Total number of prunable entries (static: depends only on shapes)."""
    return int(sum(np.prod(jnp.shape(m), dtype=np.int64) for m in mask_leaves(mask)))


def num_kept(mask: Mask) -> jax.Array:
    """Number of kept (True) prunable entries, as an int32 scalar. Jit-able."""
    leaves = mask_leaves(mask)
    if not leaves:
        return jnp.zeros((), jnp.int32)
    return sum(jnp.sum(m, dtype=jnp.int32) for m in leaves)


def kept_per_leaf(mask: Mask) -> list[int]:
    """Kept (True) entries of each prunable leaf of a concrete mask, as host integers (not jit-able:
    for plans, counts and logs)."""
    return [int(np.sum(np.asarray(m))) for m in mask_leaves(mask)]


def sparsity(mask: Mask) -> jax.Array:
    """Fraction of prunable entries that are pruned (0 = dense). Jit-able."""
    n = num_prunable(mask)
    if n == 0:
        return jnp.zeros((), jnp.float32)
    return 1.0 - num_kept(mask) / n


def sparsity_summary(mask: Mask, params: PyTree | None = None) -> dict[str, Any]:
    """Host-side summary of a mask, as plain Python numbers.

    Returns ``{"per_leaf": {keystr: {"size", "kept", "sparsity"}}, "prunable", "kept", "sparsity"}``
    over prunable leaves, and, when ``params`` is given, ``"total"`` (all parameters) and
    ``"overall_sparsity"`` (pruned entries over all parameters, unprunable ones counted as kept).
    """
    per_leaf: dict[str, dict[str, float]] = {}
    flat, _ = jax.tree_util.tree_flatten_with_path(mask, is_leaf=is_unprunable)
    for path, m in flat:
        if m is None:
            continue
        size = int(np.size(m))
        kept = int(np.sum(np.asarray(m)))
        per_leaf[jax.tree_util.keystr(path)] = {
            "size": size,
            "kept": kept,
            "sparsity": 1.0 - kept / size if size else 0.0,
        }
    prunable = sum(v["size"] for v in per_leaf.values())
    kept = sum(v["kept"] for v in per_leaf.values())
    summary: dict[str, Any] = {
        "per_leaf": per_leaf,
        "prunable": prunable,
        "kept": kept,
        "sparsity": 1.0 - kept / prunable if prunable else 0.0,
    }
    if params is not None:
        check_mask(params, mask)
        total = int(sum(np.size(p) for p in jax.tree.leaves(params)))
        summary["total"] = total
        summary["overall_sparsity"] = (prunable - kept) / total if total else 0.0
    return summary


def intersect_masks(a: Mask, b: Mask) -> Mask:
    """Entry-wise AND of two masks of the same structure (``None`` where either is ``None``)."""
    return jax.tree.map(
        lambda x, y: None if x is None or y is None else jnp.logical_and(x, y),
        a,
        b,
        is_leaf=is_unprunable,
    )


def _check_same_layout(a: Mask, b: Mask) -> None:
    """Raise ``ValueError`` unless masks ``a`` and ``b`` have the same structure, prunable leaves and
    shapes (static: no device work)."""
    a_leaves, a_def = jax.tree_util.tree_flatten_with_path(a, is_leaf=is_unprunable)
    b_leaves, b_def = jax.tree_util.tree_flatten(b, is_leaf=is_unprunable)
    if a_def != b_def:
        raise ValueError(f"the two masks' tree structures differ:\n  a: {a_def}\n  b: {b_def}")
    for (path, x), y in zip(a_leaves, b_leaves):
        if (x is None) != (y is None) or (x is not None and jnp.shape(x) != jnp.shape(y)):
            raise ValueError(
                f"mask leaf {jax.tree_util.keystr(path)} differs between the two masks: "
                f"{'unprunable' if x is None else jnp.shape(x)} vs {'unprunable' if y is None else jnp.shape(y)}"
            )


def mask_overlap(a: Mask, b: Mask) -> jax.Array:
    """Jaccard overlap of the kept sets: |a AND b| / |a OR b| over prunable entries (1 if both empty).

    Raises ``ValueError`` if the masks differ in structure, prunable leaves or shapes.
    """
    _check_same_layout(a, b)
    pairs = list(zip(mask_leaves(a), mask_leaves(b)))
    both = sum((jnp.sum(x & y, dtype=jnp.int32) for x, y in pairs), jnp.zeros((), jnp.int32))
    either = sum((jnp.sum(x | y, dtype=jnp.int32) for x, y in pairs), jnp.zeros((), jnp.int32))
    return jnp.where(either > 0, both / jnp.maximum(either, 1), 1.0)
