"""The XLA compiler options of the programs ballot_jax compiles to run a model, and ``jit`` with them.

On the CPU backend, XLA (jaxlib 0.10 to 0.12 at least) hands every convolution to YNNPACK by default
(``LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION`` in the debug option ``xla_cpu_experimental_ynn_fusion_type``,
beside individual dots and reductions). On the CPUs measured here its convolution kernels are slower than
XLA's own: a 3x3, 64-channel weight gradient at 32x32 and batch 32 takes 66.3 ms through YNNPACK and
24.4 ms without it (1 thread); the engine's ResNet-18 training step 932 -> 615 ms and SmallCNN's 49.8 -> 22.9 ms
(2 threads; docs/speed_notes.md §2, session 37). So on CPU ballot_jax compiles with that option set to XLA's default
without convolutions, ``CPU_LIBRARY_FUSIONS`` (dots and reductions still go to YNNPACK, as by default).

- Other backends (GPU, TPU) get no options: their convolutions are the vendor's.
- ``BALLOT_JAX_XLA_DEFAULTS=1`` in the environment: no options anywhere, i.e. every program compiled
  exactly as before session 37 (how every record in docs/results made before 2026-12-05 was trained;
  what reproduces those bit for bit).
- A user who sets the option in ``XLA_FLAGS`` keeps theirs (ballot_jax then passes nothing).
- An XLA that does not know the option (a later jaxlib may rename it) gets none, with one warning.

The options change which kernel computes a convolution, not what it computes: results agree to float32
rounding, not bit for bit. Your own ``jax.jit`` of a conv model gets the same speed with
``jax.jit(f, compiler_options=ballot_jax.compiler.compiler_options())``, ``ballot_jax.compiler.jit(f)``, or
``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE``.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

CPU_OPTION = "xla_cpu_experimental_ynn_fusion_type"
DEFAULTS_VARIABLE = "BALLOT_JAX_XLA_DEFAULTS"  # set to 1: compile everything with XLA's defaults
# XLA's CPU default for the option less LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION.
CPU_LIBRARY_FUSIONS = ("LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", "LIBRARY_FUSION_TYPE_REDUCE")


def _set_by_user() -> bool:
    return os.environ.get(DEFAULTS_VARIABLE, "0") not in ("", "0") or CPU_OPTION in os.environ.get("XLA_FLAGS", "")


@functools.cache
def _accepted(option: str, value: str) -> bool:
    """Whether this jaxlib's CPU compiler takes ``option=value`` (one tiny compilation per process)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options={option: value}).lower(jnp.zeros((), jnp.float32)).compile()
    except Exception as error:  # noqa: BLE001 -- XLA raises its own runtime error type for unknown options
        warnings.warn(f"ballot_jax.compiler: this XLA does not take {option}={value!r} ({error}); "
                      "compiling with XLA's defaults (CPU convolutions may be slower)", stacklevel=3)
        return False
    return True


def compiler_options(platform: str | None = None) -> dict[str, str] | None:
    """The options ballot_jax compiles model programs with on ``platform`` ("cpu", "gpu", "tpu"; default:
    JAX's default backend): ``{CPU_OPTION: ",".join(CPU_LIBRARY_FUSIONS)}`` on CPU, None on any other
    platform, when ``BALLOT_JAX_XLA_DEFAULTS`` is set (not 0), when ``XLA_FLAGS`` sets ``CPU_OPTION``
    itself, or when this XLA does not take it.

    Pass it to ``jax.jit(..., compiler_options=...)``."""
    if (platform or jax.default_backend()) != "cpu" or _set_by_user():
        return None
    value = ",".join(CPU_LIBRARY_FUSIONS)
    return {CPU_OPTION: value} if _accepted(CPU_OPTION, value) else None


class _Jitted:
    """``fun`` jitted twice: with ``options`` (called at the top level) and without them (called while
    another program is being traced: JAX takes compiler options only on the outermost ``jit``, and the
    outer program's options are then the ones that apply). JAX refuses the options when it stages the
    call into the outer program, before anything runs; the plain jit then takes the call, so a top-level
    call costs what ``jax.jit``'s does (no check of the arguments first)."""

    def __init__(self, fun: Callable, options: dict[str, str], kwargs: dict[str, Any]):
        self._tuned = jax.jit(fun, compiler_options=options, **kwargs)
        self._plain = jax.jit(fun, **kwargs)
        functools.update_wrapper(self, fun)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._tuned(*args, **kwargs)
        except ValueError as error:  # "`compiler_options` can only be passed to top-level `jax.jit`"
            if "compiler_options" not in str(error):
                raise
        return self._plain(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, ...: the top-level program's
        return getattr(self._tuned, name)


def jit(fun: Callable, *, mesh: Mesh | None = None, **kwargs: Any) -> Callable:
    """``jax.jit(fun, **kwargs)`` compiled with :func:`compiler_options` for the platform of ``mesh``'s
    devices (default: JAX's default backend) when called at the top level, and as a plain ``jax.jit``
    when called inside another ``jit`` (whose options then apply), so it nests like one. Where there are
    no options it is the plain ``jax.jit``."""
    options = compiler_options(None if mesh is None else mesh.devices.flat[0].platform)
    return jax.jit(fun, **kwargs) if options is None else _Jitted(fun, options, kwargs)
