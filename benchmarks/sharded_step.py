"""The engine's sharded (data-parallel) train step over 1, 2 and 4 devices, same global batch.

For each model (SmallCNN at 32x32x3 and the MLP, global batch 64; the masked step at 90% sparsity,
exactly as ``engine.loop.Trainer`` builds it):

  (a) correctness: params after 3 steps (3 different batches) on 2 and 4 devices match the
      1-device params to 1e-5 (max absolute difference) -- PASS/FAIL, exit status 1 on FAIL;
  (b) timing: median ms per step over interleaved repetitions, ratio to 1 device.

Devices are virtual CPU devices (``--xla_force_host_platform_device_count=4``, set below before JAX
is imported). They share the machine's cores, so on a 2-core CPU more devices cannot make a step
faster: the point is that sharding is correct and what its overhead costs, not speed-up.

    python -m benchmarks.sharded_step [--repeats N] [--json PATH] [--quick] [--backend cpu]
"""

from __future__ import annotations

import os

# Must happen before JAX is imported anywhere in this process (benchmarks.common does not import it).
_flags = os.environ.get("XLA_FLAGS", "")
if "--xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()

import sys  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.masked_step import SPARSITY, model_specs  # noqa: E402

DEVICE_COUNTS = (1, 2, 4)
CHECK_STEPS = 3
ATOL = 1e-5


def build(spec: dict[str, Any], meshes: dict[int, Any]) -> dict[str, Any]:
    """Per device count: the compiled masked step, the replicated state and the sharded batches."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ballot_jax.engine.loop import TrainConfig, make_optimizer
    from ballot_jax.engine.mesh import put_batch, replicated
    from ballot_jax.engine.steps import TrainState, make_train_step
    from ballot_jax.models import get_model
    from ballot_jax.optim import FixedMaskState, fixed_mask

    num_classes = 10
    model = get_model(spec["name"], num_classes=num_classes, **spec["kwargs"])
    rng = np.random.default_rng(0)
    n = spec["batch"]
    batches = [
        {
            "x": rng.normal(size=(n, *spec["shape"])).astype(np.float32),
            "y": rng.integers(0, num_classes, size=n).astype(np.int32),
            "group": rng.integers(0, 2, size=n).astype(np.int32),
        }
        for _ in range(CHECK_STEPS)
    ]
    key = jax.random.PRNGKey(0)
    params, model_state = jax.jit(model.init)(key, jnp.asarray(batches[0]["x"][:1]))
    mask = common.magnitude_mask(params, SPARSITY)
    params = common.apply_mask_host(params, mask)
    config = TrainConfig()
    tx = fixed_mask(make_optimizer(config), None)  # the mask is read from the state, as in Trainer
    state = TrainState(
        jnp.zeros((), jnp.int32), params, jax.device_get(model_state),
        FixedMaskState(make_optimizer(config).init(params), mask), jax.random.fold_in(key, 1),
    )
    out = {}
    for count, mesh in meshes.items():
        out[count] = {
            "step": make_train_step(model, tx, mesh),
            "state": jax.device_put(state, replicated(mesh)),
            "batches": [put_batch(b, mesh) for b in batches],
        }
    return {"per_count": out, "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params)))}


def params_after_steps(entry: dict[str, Any]) -> tuple[Any, float]:
    """Params after one step per batch, and the first call's seconds (compilation included)."""
    import time

    import jax

    state = entry["state"]
    t0 = time.perf_counter()
    first = None
    for b in entry["batches"]:
        state, _ = entry["step"](state, b)
        if first is None:
            jax.block_until_ready(state)
            first = time.perf_counter() - t0
    return jax.device_get(state.params), first


def max_abs_diff(a, b) -> float:
    import jax
    import numpy as np

    return float(max(np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=21)
    parser.add_argument("--backend", default="cpu", help="device platform to shard over (default cpu)")
    args = parser.parse_args(argv)
    common.check_args(args)

    import jax

    from ballot_jax.engine.mesh import data_mesh

    devices = jax.devices(args.backend)
    counts = [c for c in DEVICE_COUNTS if c <= len(devices)]
    skipped = [c for c in DEVICE_COUNTS if c > len(devices)]
    meshes = {c: data_mesh(devices[:c]) for c in counts}
    min_sample_s = 0.002 if args.quick else 0.1

    rows, measurements, failed = [], {}, False
    for spec in model_specs(args.quick):
        label = spec["label"]
        print(f"[{label}] building and compiling for {counts} devices ...", file=sys.stderr, flush=True)
        b = build(spec, meshes)
        per = b["per_count"]

        after = {c: params_after_steps(per[c]) for c in counts}
        diffs = {c: max_abs_diff(after[c][0], after[1][0]) for c in counts}
        passed = {c: diffs[c] <= ATOL for c in counts}
        failed |= not all(passed.values())
        for c in counts[1:]:
            print(f"[{label}] {c} device(s): max |params - params_1dev| after {CHECK_STEPS} steps = "
                  f"{diffs[c]:.2e}  {'PASS' if passed[c] else 'FAIL'}", file=sys.stderr, flush=True)

        variants = {f"{c} dev": (lambda e=per[c]: e["step"](e["state"], e["batches"][0])) for c in counts}
        res = common.compare(variants, repeats=args.repeats, warmup=args.warmup, min_sample_s=min_sample_s)
        base = res["1 dev"]["samples_s"]
        measurements[label] = {
            "model": spec["name"], "model_kwargs": spec["kwargs"], "input_shape": list(spec["shape"]),
            "global_batch_size": spec["batch"], "num_params": b["num_params"], "sparsity": SPARSITY,
            "devices": {},
        }
        for c in counts:
            r = res[f"{c} dev"]
            check = "ref" if c == 1 else ("PASS" if passed[c] else "FAIL")
            r["first_call_s"] = after[c][1]  # compile + first step, measured in the correctness pass
            m = measurements[label]["devices"][str(c)] = {
                **common.measured(r, base), "max_abs_diff_vs_1dev": diffs[c], "check": check,
            }
            rows.append([
                label, c, spec["batch"] // c, common.ms(m["median_s"]), common.ms(m["iqr_s"]),
                f"{m['ratio']:.3f}", f"{m['first_call_s']:.2f}", "-" if c == 1 else f"{diffs[c]:.1e}", check,
            ])

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    notes = [
        f"sharded_step: engine masked train step (sparsity {SPARSITY}) on a 'data' mesh of 1/2/4 "
        f"{args.backend} devices, same global batch;",
        f"check = params after {CHECK_STEPS} steps equal the 1-device params to {ATOL:g} (max abs diff).",
    ]
    if args.backend == "cpu":
        notes.append(
            f"NOTE: these are virtual CPU devices sharing the same {cores} core(s): more devices add no compute, so "
            "a ratio below 1 only shows XLA spreading one step over the cores differently (a thread per device vs "
            "intra-op threads), not scaling. The point here is correctness and the overhead of sharding."
        )
    if skipped:
        notes.append(f"skipped device counts {skipped}: only {len(devices)} {args.backend} device(s) visible")
    notes.append(f"overall: {'FAIL' if failed else 'PASS'}" + (" (--quick: tiny sizes)" if args.quick else ""))
    common.finish(
        args,
        "sharded_step",
        ["model", "devices", "batch/dev", "median ms", "IQR ms", "vs 1 dev", "1st call s", "max|dparam|", "check"],
        rows,
        {"atol": ATOL, "check_steps": CHECK_STEPS, "passed": not failed, "skipped_device_counts": skipped,
         "measurements": measurements},
        notes,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
