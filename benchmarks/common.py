"""A tiny shared benchmark harness: interleaved timing, robust statistics, a table, and JSON.

Timing rules (the machines these run on are small and noisy):

* every variant is compiled and warmed up first (its first-call time, compile included, is kept
  separately), then the variants are timed *interleaved*: each repetition times every variant once,
  in an order rotated by one each repetition, so slow drift of the machine hits all variants alike;
* every timed call ends with ``jax.block_until_ready`` on its outputs (JAX dispatches
  asynchronously, so without it one would time the dispatch, not the computation);
* results are medians with the inter-quartile range, and comparisons are ratios measured in the
  same process (``paired_ratio``: the median of per-repetition ratios). Never compare absolute times
  across runs or machines, and never assert on them.

JAX is imported lazily, so a benchmark may set ``XLA_FLAGS`` after importing this module (but before
its own first JAX call).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser(description: str, *, repeats: int = 15) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description, allow_abbrev=False)
    p.add_argument("--repeats", type=int, default=repeats, help=f"timed repetitions per variant (default {repeats})")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per variant before timing; the first compiles")
    p.add_argument("--json", metavar="PATH", default=None, help="also write measurements and environment to PATH")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the benchmark, not a measurement")
    return p


# Cheap XLA CPU compilation for --quick smoke runs (about halves their compile time; the code it
# produces is slower, which is fine for a smoke test and wrong for a measurement).
QUICK_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")


def add_xla_flags(*flags: str) -> None:
    """Append ``flags`` to ``XLA_FLAGS`` unless a flag of the same name is already set there.

    Only effective before JAX initialises its backends, so call it before the first JAX import.
    """
    if "jax" in sys.modules:
        print("warning: jax is already imported; XLA_FLAGS may not take effect", file=sys.stderr)
    current = os.environ.get("XLA_FLAGS", "").split()
    names = {f.split("=")[0] for f in current}
    current += [f for f in flags if f.split("=")[0] not in names]
    os.environ["XLA_FLAGS"] = " ".join(current)


def thread_settings(threads: int | None) -> dict[str, Any]:
    """Restrict the process to ``threads`` cores (before JAX or torch start their pools)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if threads is not None:
        if threads < 1 or (allowed is not None and threads > len(allowed)):
            raise SystemExit(f"--threads must be in [1, {len(allowed) if allowed else '?'}]")
        if allowed is not None:
            os.sched_setaffinity(0, allowed[:threads])
            allowed = allowed[:threads]
    return {"cpu_affinity": allowed}


def check_args(args: argparse.Namespace) -> None:
    """Validate the shared options; with ``--quick``, also switch to cheap compilation (before JAX
    is imported)."""
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (the first call compiles)")
    if args.quick:
        add_xla_flags(*QUICK_XLA_FLAGS)


# ----------------------------------------------------------------------------------------------
# Timing


def _block(out: Any) -> Any:
    import jax

    return jax.block_until_ready(out)


def _time_once(fn: Callable, args: Sequence[Any], number: int) -> float:
    """Seconds per call of ``fn(*args)``, averaged over ``number`` calls, each blocked on before the
    next: keeping all ``number`` outputs alive instead would time the allocation of ``number``
    result buffers (for large outputs, such as G per-group gradients, it dominated), which a real
    loop that consumes each result does not pay."""
    t0 = time.perf_counter()
    for _ in range(number):
        _block(fn(*args))
    return (time.perf_counter() - t0) / number


def time_fn(fn: Callable, *args: Any, repeats: int = 10, warmup: int = 1, number: int = 1) -> list[float]:
    """Seconds per call of ``fn(*args)``: ``repeats`` samples after ``warmup`` untimed calls.

    Each sample times ``number`` calls (each blocked on before the next) and divides by
    ``number``; use ``number > 1`` for calls so short that Python overhead would dominate.
    """
    for _ in range(warmup):
        _block(fn(*args))
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return [_time_once(fn, args, number) for _ in range(repeats)]
    finally:
        if was_enabled:
            gc.enable()


def calibrate_number(fn: Callable[[], Any], min_sample_s: float, max_number: int = 1000) -> int:
    """Calls per sample so that one sample of the (warmed-up) ``fn`` lasts at least ``min_sample_s``."""
    per_call = float(np.median([_time_once(fn, (), 1) for _ in range(3)]))
    return int(min(max_number, max(1, np.ceil(min_sample_s / max(per_call, 1e-9)))))


def compare(
    variants: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 2,
    number: int | None = None,
    min_sample_s: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Time zero-argument callables interleaved; returns ``{name: {"samples_s", "first_call_s",
    "number"}}`` with seconds per call.

    All variants are warmed up first (the first call's time, which includes compilation, is
    recorded as ``first_call_s``). ``number`` calls make one sample; by default it is calibrated on
    the slowest variant so a sample lasts at least ``min_sample_s``, and it is the same for all
    variants. Then repetition ``r`` times every variant once, starting at variant
    ``r mod len(variants)``, so the samples of repetition ``r`` are taken side by side.
    """
    names = list(variants)
    result: dict[str, dict[str, Any]] = {n: {"samples_s": [], "first_call_s": None} for n in names}
    for n in names:
        t0 = time.perf_counter()
        _block(variants[n]())
        result[n]["first_call_s"] = time.perf_counter() - t0
        for _ in range(warmup - 1):
            _block(variants[n]())
    if number is None:
        number = min(calibrate_number(variants[n], min_sample_s) for n in names)
    for n in names:
        result[n]["number"] = number
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for n in names[k:] + names[:k]:
                result[n]["samples_s"].append(_time_once(variants[n], (), number))
    finally:
        if was_enabled:
            gc.enable()
    return result


# ----------------------------------------------------------------------------------------------
# Statistics


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, IQR, min and mean of ``samples`` (seconds)."""
    a = np.asarray(samples, dtype=np.float64)
    q25, med, q75 = np.percentile(a, [25, 50, 75])
    return {
        "n": int(a.size),
        "median_s": float(med),
        "q25_s": float(q25),
        "q75_s": float(q75),
        "iqr_s": float(q75 - q25),
        "min_s": float(a.min()),
        "mean_s": float(a.mean()),
    }


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Per-repetition ratios ``numerator[r] / denominator[r]`` of interleaved samples, summarised.

    ``ratio`` is their median (robust to drift, since paired samples were taken side by side);
    ``ratio_of_medians`` is given too.
    """
    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    r = a / b
    q25, med, q75 = np.percentile(r, [25, 50, 75])
    return {
        "ratio": float(med),
        "ratio_q25": float(q25),
        "ratio_q75": float(q75),
        "ratio_of_medians": float(np.median(a) / np.median(b)),
    }


def measured(result: Mapping[str, Any], base_samples: Sequence[float]) -> dict[str, Any]:
    """One variant's ``compare`` result with its ``summarize`` statistics and its ``paired_ratio``
    to ``base_samples`` (the reference variant's samples) merged in."""
    samples = result["samples_s"]
    return {**result, **summarize(samples), **paired_ratio(samples, base_samples)}


def target_mark(ratio: float, target: float) -> str:
    """``"<= 1.10 ok"`` or ``"<= 1.10 OVER"``: a ratio against its target, for the table."""
    return f"<= {target:.2f} " + ("ok" if ratio <= target else "OVER")


def ms(seconds: float) -> str:
    """Seconds as milliseconds with a precision that suits the magnitude."""
    v = seconds * 1e3
    if v >= 100:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


# ----------------------------------------------------------------------------------------------
# Masks on the host (NumPy: no per-op compilation, which costs seconds on a busy small CPU)


def plain_jax_step(model: Any, tx: Any) -> Callable:
    """The engine's training step written as a user would, one ``compiler.jit`` of value_and_grad and
    ``tx``'s update (no mesh, no engine helpers): ``step(state, batch) -> (state, metrics)`` on an
    engine ``TrainState``. The reference the benchmarks time the engine's step against."""
    import jax
    import jax.numpy as jnp
    import optax

    from ballot_jax import compiler
    from ballot_jax.engine.steps import TrainState, mean_cross_entropy

    @compiler.jit
    def plain_step(state: TrainState, batch):
        step_rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(p):
            logits, ms = model.apply(p, state.model_state, batch["x"], True, step_rng)
            return mean_cross_entropy(logits, batch), (logits, ms)

        (loss, (logits, ms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new = TrainState(state.step + 1, optax.apply_updates(state.params, updates), ms, opt_state, state.rng)
        return new, {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}

    return plain_step


def magnitude_mask(params: Any, sparsity: float) -> Any:
    """A ballot_jax mask (NumPy bool leaves; ``None`` where ``ballot_jax.default_prunable`` says no)
    keeping the ``N - round(sparsity * N)`` largest-|w| prunable weights globally, ties broken by
    flat position -- the same counting and ranking rule as ``ballot_jax.prune_to_sparsity``.
    """
    import jax

    from ballot_jax.masks import default_prunable

    leaves, treedef = jax.tree_util.tree_flatten_with_path(jax.device_get(params))
    prunable = [default_prunable(path, np.asarray(x)) for path, x in leaves]
    flat = np.concatenate([np.abs(np.asarray(x, np.float32)).ravel() for (_, x), p in zip(leaves, prunable) if p])
    keep_n = flat.size - round(sparsity * flat.size)
    order = np.lexsort((np.arange(flat.size), -flat))  # score desc, then index asc
    keep = np.zeros(flat.size, bool)
    keep[order[:keep_n]] = True
    out, offset = [], 0
    for (_, x), p in zip(leaves, prunable):
        if not p:
            out.append(None)
            continue
        size = np.size(x)
        out.append(keep[offset : offset + size].reshape(np.shape(x)))
        offset += size
    return jax.tree_util.tree_unflatten(treedef, out)


def apply_mask_host(params: Any, mask: Any) -> Any:
    """``ballot_jax.apply_mask`` computed in NumPy (returns NumPy leaves)."""
    import jax

    from ballot_jax.masks import is_unprunable

    return jax.tree.map(
        lambda m, p: np.asarray(p) if m is None else np.where(m, np.asarray(p), 0).astype(np.asarray(p).dtype),
        mask,
        jax.device_get(params),
        is_leaf=is_unprunable,
    )


def mask_sparsity(mask: Any) -> float:
    """Fraction of prunable entries pruned (``ballot_jax.sparsity``, on the host)."""
    import jax

    from ballot_jax.masks import is_unprunable

    leaves = [np.asarray(m) for m in jax.tree.leaves(mask, is_leaf=is_unprunable) if m is not None]
    total = sum(m.size for m in leaves)
    return 1.0 - sum(int(m.sum()) for m in leaves) / total if total else 0.0


# ----------------------------------------------------------------------------------------------
# Output


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table: text columns left-aligned, numeric-looking ones right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def numeric(col: int) -> bool:
        vals = [r[col] for r in cells[1:] if r[col] not in ("", "-")]
        try:
            [float(v.rstrip("x%")) for v in vals]
        except ValueError:
            return False
        return bool(vals)

    right = [numeric(i) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


def environment() -> dict[str, Any]:
    """Where and how the measurement was taken."""
    import jax

    try:
        import jaxlib

        jaxlib_version = jaxlib.__version__
    except (ImportError, AttributeError):
        jaxlib_version = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": jaxlib_version,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kinds": sorted({d.device_kind for d in jax.devices()}),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS"),
        "git_commit": _git_commit(),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(dict(payload)), indent=2, allow_nan=False) + "\n")


def finish(
    args: argparse.Namespace,
    benchmark: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    payload: Mapping[str, Any],
    notes: Sequence[str] = (),
) -> None:
    """Write ``--json`` (if asked), then print ``notes`` and the table -- the table last."""
    if args.json:
        write_json(
            args.json,
            {
                "benchmark": benchmark,
                "settings": {k: v for k, v in vars(args).items() if k != "json"},
                "environment": environment(),
                "table": {"headers": list(headers), "rows": [[str(c) for c in r] for r in rows]},
                **payload,
            },
        )
        print(f"wrote {args.json}", file=sys.stderr)
    for n in notes:
        print(n)
    print()
    print(format_table(headers, rows))
    sys.stdout.flush()
