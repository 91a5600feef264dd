"""Max-pool backward on XLA:CPU: ``flax.linen.max_pool`` vs. a reshape max-pool with its own VJP.

``nn.max_pool`` is a ``reduce_window``; its gradient is XLA's ``select_and_scatter``, which XLA:CPU
runs several times slower than the forward pass -- in SmallCNN it is most of the train step. For the
2x2 / stride-2 pools of SmallCNN and VGG (even sizes: every window full), the library's
``ballot_jax.models._layers.max_pool_2x2`` computes the same forward (a reshape + max) and gives
the gradient to the FIRST maximum of each window in row-major window order, which is the element XLA's ``select_and_scatter`` (select =
``>=``) picks -- so forward and gradient are bitwise identical, ties included (checked here on data
with many exact ties, and on a whole SmallCNN gradient).

Variants (one device, ms per call, ratio to the Flax pool):

  pool_grad   gradient of ``relu -> pool`` on a [64, 32, 32, 32] activation: flax vs custom
  cnn_grad    ``value_and_grad`` of SmallCNN (32, 64)/128 on a batch of 64 32x32x3 images, with
              the model's pools traced as ``nn.max_pool`` (flax) or as ``max_pool_2x2`` (custom)

The library's SmallCNN and VGG-16 use ``max_pool_2x2``; this measures what it saves against the
Flax pool it replaced and re-checks that both give identical results.

    python -m benchmarks.maxpool [--repeats N] [--json PATH] [--quick]
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from benchmarks import common


@contextlib.contextmanager
def flax_pools():
    """Trace the models' 2x2 pools as ``flax.linen.max_pool`` (the baseline) instead of the
    library's ``max_pool_2x2``."""
    from flax import linen as nn

    from ballot_jax.models import small

    original = small.max_pool_2x2
    small.max_pool_2x2 = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    try:
        yield
    finally:
        small.max_pool_2x2 = original


def build(quick: bool) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import linen as nn

    from ballot_jax.models import get_model
    from ballot_jax.models._layers import max_pool_2x2 as pool

    rng = np.random.default_rng(0)
    n, hw, c = (8, 8, 4) if quick else (64, 32, 32)
    # quantised values: many exact ties inside windows, after the ReLU and before it
    x = jnp.asarray(np.round(rng.normal(size=(n, hw, hw, c)) * 2) / 2, jnp.float32)
    ct = jnp.asarray(rng.normal(size=(n, hw // 2, hw // 2, c)), jnp.float32)

    def flax_pool(v):
        return nn.max_pool(v, (2, 2), strides=(2, 2), padding="SAME")

    grad_flax = jax.jit(lambda v, t: jax.vjp(lambda u: flax_pool(jax.nn.relu(u)), v)[1](t)[0])
    grad_custom = jax.jit(lambda v, t: jax.vjp(lambda u: pool(jax.nn.relu(u)), v)[1](t)[0])
    raw_flax = jax.jit(lambda v, t: jax.vjp(flax_pool, v)[1](t)[0])
    raw_custom = jax.jit(lambda v, t: jax.vjp(pool, v)[1](t)[0])
    checks = {
        "pool_forward_identical": bool(jnp.array_equal(jax.jit(flax_pool)(x), jax.jit(pool)(x))),
        "pool_grad_identical_with_ties": bool(jnp.array_equal(raw_flax(x, ct), raw_custom(x, ct))),
        "relu_pool_grad_identical": bool(jnp.array_equal(grad_flax(x, ct), grad_custom(x, ct))),
    }

    kwargs, shape, batch = ({"channels": (4, 8), "dense": 16}, (8, 8, 3), 8) if quick else ({}, (32, 32, 3), 64)
    model = get_model("small_cnn", num_classes=10, **kwargs)
    images = jnp.asarray(np.round(rng.normal(size=(batch, *shape)) * 4) / 4, jnp.float32)  # ties again
    labels = jnp.asarray(rng.integers(0, 10, size=batch), jnp.int32)
    params, state = jax.jit(model.init)(jax.random.PRNGKey(0), images[:1])

    def loss(p):
        logits, _ = model.apply(p, state, images, True, None)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    cnn_flax = jax.jit(jax.value_and_grad(loss))
    cnn_custom = jax.jit(jax.value_and_grad(lambda p: loss(p)))  # a distinct function: its own trace
    with flax_pools():
        ref = cnn_flax(params)  # traced (and compiled) with Flax's pool
    new = cnn_custom(params)
    checks["cnn_value_and_grad_identical"] = all(
        bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(new)))
    return {
        "pool": {"flax": lambda: grad_flax(x, ct), "custom": lambda: grad_custom(x, ct)},
        "cnn": {"flax": lambda: cnn_flax(params), "custom": lambda: cnn_custom(params)},
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=15)
    args = parser.parse_args(argv)
    common.check_args(args)
    print("building, checking, compiling ...", file=sys.stderr, flush=True)
    b = build(args.quick)
    min_sample_s = 0.002 if args.quick else 0.1
    rows, measurements = [], {}
    for case, label in (("pool", "pool_grad"), ("cnn", "cnn_grad")):
        res = common.compare(b[case], repeats=args.repeats, warmup=args.warmup, min_sample_s=min_sample_s)
        base = res["flax"]["samples_s"]
        measurements[label] = {name: common.measured(r, base) for name, r in res.items()}
        for name, m in measurements[label].items():
            rows.append([label, name, common.ms(m["median_s"]), common.ms(m["iqr_s"]), f"{m['ratio']:.3f}"])
    ok = all(b["checks"].values())
    notes = [
        "maxpool: gradient through flax.linen.max_pool (XLA select_and_scatter) vs a reshape max-pool with a",
        "first-maximum custom VJP; ms per call, ratio = median of paired ratios to 'flax'.",
        "identical results (forward, gradient with ties, whole SmallCNN value_and_grad): "
        + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in b["checks"].items())
        + (" (--quick: sizes too small to mean anything)" if args.quick else ""),
    ]
    common.finish(args, "maxpool", ["case", "pool", "median ms", "IQR ms", "vs flax"], rows,
                  {"checks": b["checks"], "identical": ok, "measurements": measurements}, notes)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
