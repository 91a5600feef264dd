"""Session 35: maps smaller than the kernel (ballot_jax.models.patches), before and after, at 1 thread.

Part 1: one 3x3, 512 -> 512 convolution at batch 32 on 1x1, 2x2 and 4x4 maps: lax's forward and
gradient ms, the patches' forward and gradient where they apply (maps under 3x3), and the layout
XLA:CPU chose for lax's convolution (``dim_labels`` in the optimised HLO).
Part 2: VGG-16 (32x32 inputs, batch 32) and ResNet-50 with the ImageNet stem (64x64, Tiny
ImageNet's size, batch 16), width 64, batch norm: a training ``value_and_grad`` and an eval-mode
forward pass with every layer on lax ("before": ``_layers._CONV_FUNCTIONS["xla"]`` set to
``lax.conv_general_dilated``) and as shipped ("after"); interleaved, median of 3.

    PYTHONPATH=. python docs/results/scripts/session35_small_maps.py
"""

from __future__ import annotations

import os

os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # 1 thread, before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from ballot_jax.models import _layers, get_module  # noqa: E402
from ballot_jax.models import patches as P  # noqa: E402
from session35_winograd import interleaved_ms, median_ms  # noqa: E402  (this script's folder is on sys.path)

NHWC = ("NHWC", "HWIO", "NHWC")
PAD = ((1, 1), (1, 1))


def one_layer() -> None:
    print("part 1: 3x3, 512 -> 512 convolution, batch 32, 1 thread (ms)")
    lax_conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), PAD, dimension_numbers=NHWC)  # noqa: E731
    patch = lambda x, k: P.patch_conv(x, k, PAD)  # noqa: E731
    for size in (1, 2, 4):
        x = jax.random.normal(jax.random.PRNGKey(0), (32, size, size, 512))
        k = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 512, 512)) * 0.02
        ct = jax.random.normal(jax.random.PRNGKey(2), (32, size, size, 512))
        hlo = jax.jit(lax_conv).lower(x, k).compile().as_text()
        labels = next(line.split("dim_labels=")[1].split(",")[0] for line in hlo.splitlines()
                      if "convolution(" in line and "dim_labels=" in line)
        line = f"  {size}x{size}: lax forward {median_ms(jax.jit(lax_conv), x, k, n=5):7.1f}, gradient "
        grad = lambda f: jax.jit(jax.grad(lambda x, k: jnp.vdot(f(x, k), ct), argnums=(0, 1)))  # noqa: E731
        line += f"{median_ms(grad(lax_conv), x, k, n=5):7.1f} ({labels})"
        if size < 3:
            diff = float(jnp.max(jnp.abs(patch(x, k) - lax_conv(x, k))))
            line += (f"; patches forward {median_ms(jax.jit(patch), x, k, n=5):5.1f}, gradient "
                     f"{median_ms(grad(patch), x, k, n=5):5.1f} (max |difference| {diff:.1e})")
        print(line, flush=True)


def models() -> None:
    print("part 2: training value_and_grad and eval forward, every layer on lax (before) vs shipped (after); "
          "1 thread, interleaved, median of 3")
    shipped = _layers._CONV_FUNCTIONS["xla"]
    for name, kwargs, size, batch in [("vgg16", {}, 32, 32), ("resnet50", {"stem": "imagenet"}, 64, 16)]:
        x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, 3))
        y = jnp.arange(batch) % 10
        module = get_module(name, 10, norm="batch", **kwargs)
        variables = module.init(jax.random.PRNGKey(1), x[:1])

        def loss(params):
            out, _ = module.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

        fns = {}
        for when, conv in (("before", jax.lax.conv_general_dilated), ("after", shipped)):
            _layers._CONV_FUNCTIONS["xla"] = conv  # read when the functions are traced, just below
            train = jax.jit(jax.value_and_grad(loss))
            evaluate = jax.jit(lambda p: module.apply({**variables, "params": p}, x))
            jax.block_until_ready((train(variables["params"]), evaluate(variables["params"])))
            fns[when] = (train, evaluate)
        _layers._CONV_FUNCTIONS["xla"] = shipped
        med = interleaved_ms({(w, i): (lambda f=f: f(variables["params"])) for w, pair in fns.items()
                              for i, f in enumerate(pair)}, 3)
        print(f"  {name} ({size}x{size}, batch {batch}): train step {med[('before', 0)]:.0f} -> {med[('after', 0)]:.0f} ms "
              f"({med[('after', 0)] / med[('before', 0)]:.3f}); eval forward {med[('before', 1)]:.0f} -> "
              f"{med[('after', 1)]:.0f} ms ({med[('after', 1)] / med[('before', 1)]:.3f})", flush=True)


if __name__ == "__main__":
    one_layer()
    models()
