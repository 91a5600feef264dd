"""Cost of Ballot's per-group gradient pass against ordinary gradients over the same examples.

Variants, per model, same params, same G × B_g examples, one device, all jitted:

  one_grad     ``jax.value_and_grad`` of the mean loss over all G·B_g examples at once -- the baseline
  vmap_groups  ``ballot_jax.per_group_grads`` (G gradients, G losses, G accuracies in one pass): a
               ``vmap`` of ``value_and_grad`` over the group axis of a [G, B_g, ...] batch, except on
               the CPU backend for a loss with a convolution, where it unrolls the G gradients in the
               same program (``formulation`` in the JSON says which ran)
  loop_groups  a Python loop of G separate jitted ``value_and_grad`` calls, one per group

``--all-formulations`` adds: ``vmap_only`` (the vmap formulation, forced), ``unrolled`` (the
unrolled one, forced) and ``loop_stacked`` (the loop, then one jitted call that stacks its G results:
the same outputs as ``per_group_grads``, whose squared gradients are left to their consumer).

Reported: median ms per call (IQR) and paired ratios to ``one_grad``. Target: vmap_groups/one_grad
<= 1.3 (the per-group pass should cost about one ordinary gradient, not G of them).

    python -m benchmarks.conflict [--repeats N] [--json PATH] [--quick] [--groups G] [--all-formulations]
"""

from __future__ import annotations

import functools
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


def build(spec: dict[str, Any], groups: int, all_formulations: bool = False) -> dict[str, Any]:
    """The three variants for one model, as zero-argument callables."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ballot_jax import compiler, grads
    from ballot_jax.engine.steps import group_loss
    from ballot_jax.grads import GroupGrads, per_group_grads
    from ballot_jax.models import get_model

    model = get_model(spec["name"], num_classes=10, **spec["kwargs"])
    rng = np.random.default_rng(0)
    b = spec["per_group"]
    x = jnp.asarray(rng.normal(size=(groups, b, *spec["shape"])), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size=(groups, b)), jnp.int32)
    params, model_state = jax.jit(model.init)(jax.random.PRNGKey(0), x[0, :1])
    loss_fn = functools.partial(group_loss(model), model_state=model_state)
    grouped = {"x": x, "y": y}
    flat = {"x": x.reshape(groups * b, *spec["shape"]), "y": y.reshape(-1)}
    group_batches = [{"x": x[g], "y": y[g]} for g in range(groups)]

    one_grad = compiler.jit(jax.value_and_grad(loss_fn, has_aux=True))
    vmap_groups = compiler.jit(per_group_grads, static_argnums=0)
    variants = {
        "one_grad": lambda: one_grad(params, flat),
        "vmap_groups": lambda: vmap_groups(loss_fn, params, grouped),
        "loop_groups": lambda: [one_grad(params, gb) for gb in group_batches],
    }
    if all_formulations:
        vmap_only = compiler.jit(grads._per_group_grads_vmap, static_argnums=0)
        unrolled = compiler.jit(grads._per_group_grads_unrolled, static_argnums=0)

        @compiler.jit
        def stack(outs):
            (loss, acc), g = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
            return GroupGrads(g, None, loss, acc)

        variants["vmap_only"] = lambda: vmap_only(loss_fn, params, grouped)
        variants["unrolled"] = lambda: unrolled(loss_fn, params, grouped)
        variants["loop_stacked"] = lambda: stack([one_grad(params, gb) for gb in group_batches])
    return {
        "variants": variants,
        "formulation": "unrolled" if grads._unroll_groups(loss_fn, params, grouped) else "vmap",
        "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=20)
    parser.add_argument("--groups", type=int, default=4, help="number of groups G (default 4)")
    parser.add_argument("--all-formulations", action="store_true",
                        help="also time the vmap and unrolled formulations forced, and the loop with stacked outputs")
    args = parser.parse_args(argv)
    common.check_args(args)
    min_sample_s = 0.002 if args.quick else 0.1
    rows, measurements = [], {}
    for spec in model_specs(args.quick):
        label = spec["label"]
        print(f"[{label}] building and compiling ...", file=sys.stderr, flush=True)
        b = build(spec, args.groups, args.all_formulations)
        res = common.compare(b["variants"], repeats=args.repeats, warmup=args.warmup, min_sample_s=min_sample_s)
        base = res["one_grad"]["samples_s"]
        measurements[label] = {"model": spec["name"], "groups": args.groups, "per_group": spec["per_group"],
                               "num_params": b["num_params"], "formulation": b["formulation"], "variants": {}}
        print(f"[{label}] per_group_grads formulation here: {b['formulation']}", file=sys.stderr, flush=True)
        for name, r in res.items():
            m = measurements[label]["variants"][name] = common.measured(r, base)
            target = common.target_mark(m["ratio"], TARGET) if name == "vmap_groups" else ""
            rows.append([label, name, common.ms(m["median_s"]), common.ms(m["iqr_s"]),
                         f"{m['ratio']:.3f}", f"{m['first_call_s']:.2f}", target])
    notes = [
        f"conflict: per-group gradients of G={args.groups} groups in one pass (ballot_jax.per_group_grads: "
        + ", ".join(f"{k} {m['formulation']}" for k, m in measurements.items()) + ")",
        "vs one ordinary gradient over the same G*B_g examples, and vs a Python loop of G gradient calls; 1 device;",
        f"ms per call; ratio = median of paired per-repetition ratios to 'one_grad'. Target vmap_groups/one_grad <= {TARGET}."
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
