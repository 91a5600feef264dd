"""Overhead of masked training: the engine's train step with ``optim.fixed_mask`` vs. the dense step.

Variants, per model, same params (already masked at 90% sparsity), same batch, same optimizer
(the engine's default: SGD with momentum 0.9, weight decay 5e-4, cosine schedule), one device:

  dense      ``engine.steps.make_train_step(model, tx, mesh)``: the engine step (shard_map, pmean,
             pcast) with the bare optimizer -- the baseline
  masked     ``make_train_step(model, optim.fixed_mask(tx, None), mesh)`` with the mask (90% sparsity,
             global magnitude pruning) in the optimizer state, exactly as ``engine.loop.Trainer``
  plain_jit  a plain jit (``ballot_jax.compiler.jit``: ``jax.jit`` with the engine's CPU compiler options)
             of ``value_and_grad`` + optax update, no shard_map (for reference: what the shard_map
             structure itself costs on one device)

Reported: median ms per step (IQR) and the paired ratio to ``dense``. Target: masked/dense <= 1.10.
Masking does no less arithmetic here (dense kernels with zeros); the question is only what the two
``jnp.where`` passes over the prunable leaves cost on top of the step.

    python -m benchmarks.masked_step [--repeats N] [--json PATH] [--quick]
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks import common

TARGET = 1.10
SPARSITY = 0.9


def model_specs(quick: bool) -> list[dict[str, Any]]:
    """(name, model kwargs, input shape, batch size) per benchmarked model."""
    if quick:
        return [
            {"label": "small_cnn", "name": "small_cnn", "kwargs": {"channels": (4, 8), "dense": 16},
             "shape": (8, 8, 3), "batch": 8},
            {"label": "mlp", "name": "mlp", "kwargs": {"hidden": (16, 16)}, "shape": (8, 8, 3), "batch": 8},
        ]
    return [
        {"label": "small_cnn", "name": "small_cnn", "kwargs": {}, "shape": (32, 32, 3), "batch": 64},
        {"label": "mlp", "name": "mlp", "kwargs": {}, "shape": (32, 32, 3), "batch": 64},
    ]


def build(spec: dict[str, Any], mesh) -> dict[str, Any]:
    """The three step variants for one model, their states and the batch, ready to call."""
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
    batch = {
        "x": rng.normal(size=(n, *spec["shape"])).astype(np.float32),
        "y": rng.integers(0, num_classes, size=n).astype(np.int32),
        "group": rng.integers(0, 2, size=n).astype(np.int32),
    }
    key = jax.random.PRNGKey(0)
    params, model_state = jax.jit(model.init)(key, jnp.asarray(batch["x"][:1]))  # one compile, not per op
    mask = common.magnitude_mask(params, SPARSITY)
    params = common.apply_mask_host(params, mask)

    tx = make_optimizer(TrainConfig())
    rep = replicated(mesh)
    step0, srng = jnp.zeros((), jnp.int32), jax.random.fold_in(key, 1)
    dense_state = jax.device_put(TrainState(step0, params, model_state, tx.init(params), srng), rep)
    masked_state = jax.device_put(
        TrainState(step0, params, model_state, FixedMaskState(tx.init(params), mask), srng), rep
    )
    sharded_batch = put_batch(batch, mesh)

    dense_step = make_train_step(model, tx, mesh)
    masked_step = make_train_step(model, fixed_mask(tx, None), mesh)

    plain_step = common.plain_jax_step(model, tx)

    return {
        "variants": {
            "dense": lambda: dense_step(dense_state, sharded_batch),
            "masked": lambda: masked_step(masked_state, sharded_batch),
            "plain_jit": lambda: plain_step(dense_state, sharded_batch),
        },
        "mask": mask,
        "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
        "sparsity": common.mask_sparsity(mask),
    }


def pruned_stay_zero(masked_out, mask) -> bool:
    """Sanity check of the masked variant: after its step, every pruned weight is exactly 0."""
    import jax
    import numpy as np

    from ballot_jax.masks import is_unprunable

    state, _ = masked_out
    pairs = zip(jax.tree.leaves(mask, is_leaf=is_unprunable), jax.tree.leaves(jax.device_get(state.params)))
    return all(m is None or not np.any(np.asarray(p)[~np.asarray(m)]) for m, p in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=25)
    args = parser.parse_args(argv)
    common.check_args(args)

    import jax

    from ballot_jax.engine.mesh import data_mesh

    mesh = data_mesh(jax.devices()[:1])
    min_sample_s = 0.002 if args.quick else 0.1
    rows, measurements, checks = [], {}, {}
    for spec in model_specs(args.quick):
        label = spec["label"]
        print(f"[{label}] building and compiling ...", file=sys.stderr, flush=True)
        b = build(spec, mesh)
        res = common.compare(b["variants"], repeats=args.repeats, warmup=args.warmup, min_sample_s=min_sample_s)
        ok = pruned_stay_zero(b["variants"]["masked"](), b["mask"])
        checks[label] = {"pruned_weights_stay_zero": ok}
        base = res["dense"]["samples_s"]
        measurements[label] = {
            "model": spec["name"],
            "model_kwargs": spec["kwargs"],
            "input_shape": list(spec["shape"]),
            "batch_size": spec["batch"],
            "num_params": b["num_params"],
            "sparsity": b["sparsity"],
            "variants": {},
        }
        for name, r in res.items():
            m = measurements[label]["variants"][name] = common.measured(r, base)
            target = common.target_mark(m["ratio"], TARGET) if name == "masked" else ""
            rows.append([
                label, name, common.ms(m["median_s"]), common.ms(m["iqr_s"]),
                f"{m['ratio']:.3f}", f"{m['first_call_s']:.2f}", target,
            ])
        print(f"[{label}] {b['num_params']} params, sparsity {b['sparsity']:.3f}, "
              f"{res['dense']['number']} step(s) per sample x {args.repeats} samples; "
              f"pruned weights stay 0 after a masked step: {'yes' if ok else 'NO'}", file=sys.stderr, flush=True)

    summary = {
        label: m["variants"]["masked"]["ratio"] for label, m in measurements.items()
    }
    notes = [
        f"masked_step: engine train step with optim.fixed_mask (sparsity {SPARSITY}) vs the same step without",
        "the wrapper; 1 device, same params/batch/optimizer; times are ms per step, ratio = median of",
        f"paired per-repetition ratios to 'dense'. Target masked/dense <= {TARGET:.2f}."
        + (" (--quick: sizes too small to mean anything)" if args.quick else ""),
    ]
    common.finish(
        args,
        "masked_step",
        ["model", "variant", "median ms", "IQR ms", "vs dense", "1st call s", "target"],
        rows,
        {"target_ratio": TARGET, "masked_over_dense": summary, "checks": checks, "measurements": measurements},
        notes,
    )
    return 0 if all(c["pruned_weights_stay_zero"] for c in checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
