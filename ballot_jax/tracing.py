"""Whether a value is being traced (inside ``jax.jit``, ``vmap``, ``grad``, ...).

Host-side checks (a count's range, a NaN scan, a label's domain) run only on concrete values; the
core's functions take the traced path when any input is a tracer.
"""

from __future__ import annotations

from typing import Any

import jax


def is_traced(*trees: Any) -> bool:
    """Whether any leaf of ``trees`` is a tracer (the caller is being traced by jit, vmap, ...)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))


__all__ = ["is_traced"]
