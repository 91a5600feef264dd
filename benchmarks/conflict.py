"""Cost of Ballot's per-group gradient pass against ordinary gradients over the same examples.

Variants, per model, same params, same G × B_g examples, one device, all jitted:

  one_grad     ``jax.value_and_grad`` of the mean loss over all G·B_g examples at once -- the baseline
  vmap_groups  ``ballot_jax.per_group_grads``: ``vmap`` of ``value_and_grad`` over the group axis of
               a [G, B_g, ...] batch (G gradients, G losses, G accuracies in one pass)
  loop_groups  a Python loop of G separate jitted ``value_and_grad`` calls, one per group

Reported: median ms per call (IQR) and paired ratios to ``one_grad``. Target: vmap_groups/one_grad
<= 1.3 (the per-group pass should cost about one ordinary gradient, not G of them).

    python -m benchmarks.conflict [--repeats N] [--json PATH] [--quick] [--groups G]
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks import common

TARGET = 1.3


def model_specs(quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [{"label": "small_cnn", "name": "small_cnn", "kwargs": {"channels": (4, 8), "dense": 16},
                 "shape": (8, 8, 3), "per_group": 4}]
    return [
        {"label": "small_cnn", "name": "small_cnn", "kwargs": {}, "shape": (32, 32, 3), "per_group": 32},
        {"label": "mlp", "name": "mlp", "kwargs": {}, "shape": (32, 32, 3), "per_group": 32},
    ]


def build(spec: dict[str, Any], groups: int) -> dict[str, Any]:
    """The three variants for one model, as zero-argument callables."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ballot_jax.grads import classification_loss, per_group_grads
    from ballot_jax.models import get_model

    model = get_model(spec["name"], num_classes=10, **spec["kwargs"])
    rng = np.random.default_rng(0)
    b = spec["per_group"]
    x = jnp.asarray(rng.normal(size=(groups, b, *spec["shape"])), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size=(groups, b)), jnp.int32)
    params, model_state = jax.jit(model.init)(jax.random.PRNGKey(0), x[0, :1])
    loss_fn = classification_loss(model, model_state)
    grouped = {"x": x, "y": y}
    flat = {"x": x.reshape(groups * b, *spec["shape"]), "y": y.reshape(-1)}
    group_batches = [{"x": x[g], "y": y[g]} for g in range(groups)]

    one_grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    vmap_groups = jax.jit(per_group_grads, static_argnums=0)
    return {
        "variants": {
            "one_grad": lambda: one_grad(params, flat),
            "vmap_groups": lambda: vmap_groups(loss_fn, params, grouped),
            "loop_groups": lambda: [one_grad(params, gb) for gb in group_batches],
        },
        "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=20)
    parser.add_argument("--groups", type=int, default=4, help="number of groups G (default 4)")
    args = parser.parse_args(argv)
    common.check_args(args)
    min_sample_s = 0.002 if args.quick else 0.1
    rows, measurements = [], {}
    for spec in model_specs(args.quick):
        label = spec["label"]
        print(f"[{label}] building and compiling ...", file=sys.stderr, flush=True)
        b = build(spec, args.groups)
        res = common.compare(b["variants"], repeats=args.repeats, warmup=args.warmup, min_sample_s=min_sample_s)
        base = res["one_grad"]["samples_s"]
        measurements[label] = {"model": spec["name"], "groups": args.groups, "per_group": spec["per_group"],
                               "num_params": b["num_params"], "variants": {}}
        for name, r in res.items():
            m = measurements[label]["variants"][name] = common.measured(r, base)
            target = common.target_mark(m["ratio"], TARGET) if name == "vmap_groups" else ""
            rows.append([label, name, common.ms(m["median_s"]), common.ms(m["iqr_s"]),
                         f"{m['ratio']:.3f}", f"{m['first_call_s']:.2f}", target])
    notes = [
        f"conflict: per-group gradients of G={args.groups} groups in one vmapped pass vs one ordinary gradient",
        "over the same G*B_g examples, and vs a Python loop of G gradient calls; 1 device; ms per call;",
        f"ratio = median of paired per-repetition ratios to 'one_grad'. Target vmap_groups/one_grad <= {TARGET}."
        + (" (--quick: sizes too small to mean anything)" if args.quick else ""),
    ]
    common.finish(
        args, "conflict",
        ["model", "variant", "median ms", "IQR ms", "vs one_grad", "1st call s", "target"],
        rows,
        {"target_ratio": TARGET, "measurements": measurements,
         "vmap_over_one_grad": {k: m["variants"]["vmap_groups"]["ratio"] for k, m in measurements.items()}},
        notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
