"""Progress output: a tqdm bar on a terminal, silence under CI or when output is not a terminal."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def quiet() -> bool:
    """True under CI (``CI`` set) or when stderr is not a terminal."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def bar(total: int, desc: str, initial: int = 0) -> tqdm:
    """A progress bar for ``total`` steps; disabled when :func:`quiet`."""
    return tqdm(total=total, initial=initial, desc=desc, disable=quiet(), leave=False, dynamic_ncols=True)


def log(message: str) -> None:
    """One line of progress on stderr (always shown: one per phase, never per step)."""
    print(message, file=sys.stderr, flush=True)
