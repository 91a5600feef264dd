"""Session 35: where Winograd F(2x2, 3x3) (ballot_jax.models.winograd) pays on this CPU, at 1 thread.

Part 1 (shapes): each 3x3 stride-1 convolution shape of the CIFAR ResNet-18 at batch 32 (and of its
width-16 variant's first stage), alone:
forward and gradient (w.r.t. input and kernel) ms, Winograd against ``lax.conv_general_dilated``,
and the float32 difference between them (max |difference| / max |direct|).
Part 2 (stages): the whole ResNet-18 (batch norm, train mode) ``value_and_grad`` with Winograd on
the 3x3 stride-1 layers of one input-channel count at a time (``covers``' tile threshold lifted),
then with the library's rule (``covers`` as shipped), interleaved, median of 7. This is what chose
``MIN_TILES`` and ``MIN_IN_CHANNELS``.

Part 3 (models): ResNet-18, ResNet-50 and VGG-16 (batch norm, width 64, batch 32), a training
``value_and_grad`` and an eval-mode forward pass, ``conv_impl`` "xla" against "winograd".

    PYTHONPATH=. python docs/results/scripts/session35_winograd.py [shapes] [stages] [models]
"""

from __future__ import annotations

import os
import sys
import time

os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # 1 thread, before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from ballot_jax.models import get_module  # noqa: E402
from ballot_jax.models import winograd as W  # noqa: E402

NHWC = ("NHWC", "HWIO", "NHWC")
BATCH = 32


def median_ms(f, *args, n=9):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def interleaved_ms(calls: dict, repeats: int) -> dict:
    """{key: median ms} of ``calls`` ({key: zero-argument function}), called in turn ``repeats`` times."""
    times: dict = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            t = time.perf_counter()
            jax.block_until_ready(call())
            times[key].append(time.perf_counter() - t)
    return {key: 1e3 * float(np.median(v)) for key, v in times.items()}


def direct(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)


def shapes() -> None:
    print("part 1: ResNet-18's 3x3 stride-1 shapes at batch 32, 1 thread (ms; ratio = winograd / direct)")
    print(f"{'H=W':>4} {'C':>4} {'O':>4} {'tiles':>6} | {'fwd direct':>10} {'winograd':>9} {'ratio':>6} | "
          f"{'grad direct':>11} {'winograd':>9} {'ratio':>6} | {'max rel diff':>12}")
    key = jax.random.PRNGKey(0)
    # The CIFAR stem (3 -> 64), a width-16 ResNet-18's first stage (16 -> 16), then ResNet-18's stages.
    for size, c, o in [(32, 3, 64), (32, 16, 16), (32, 64, 64), (16, 128, 128), (8, 256, 256), (4, 512, 512)]:
        kx, kw, kc = jax.random.split(jax.random.fold_in(key, 1000 * c + o), 3)
        x = jax.random.normal(kx, (BATCH, size, size, c))
        k = jax.random.normal(kw, (3, 3, c, o)) * (2.0 / (9 * c)) ** 0.5
        ct = jax.random.normal(kc, (BATCH, size, size, o))
        fwd = {name: jax.jit(f) for name, f in (("direct", direct), ("winograd", W.winograd_conv3x3))}
        grad = {name: jax.jit(jax.grad(lambda x, k, f=f: jnp.vdot(f(x, k), ct), argnums=(0, 1)))
                for name, f in (("direct", direct), ("winograd", W.winograd_conv3x3))}
        ref = fwd["direct"](x, k)
        rel = float(jnp.max(jnp.abs(fwd["winograd"](x, k) - ref)) / jnp.max(jnp.abs(ref)))
        tf = {n: median_ms(f, x, k) for n, f in fwd.items()}
        tg = {n: median_ms(f, x, k) for n, f in grad.items()}
        print(f"{size:>4} {c:>4} {o:>4} {BATCH * (size // 2) ** 2:>6} | {tf['direct']:>10.1f} {tf['winograd']:>9.1f} "
              f"{tf['winograd'] / tf['direct']:>6.2f} | {tg['direct']:>11.1f} {tg['winograd']:>9.1f} "
              f"{tg['winograd'] / tg['direct']:>6.2f} | {rel:>12.1e}", flush=True)


def stages() -> None:
    print("part 2: ResNet-18 (batch norm) value_and_grad, batch 32, 1 thread; Winograd on the 3x3 stride-1 layers "
          "with the input channels named (tile threshold lifted), then the shipped rule; interleaved, median of 7")
    shipped = W.covers
    x = jax.random.normal(jax.random.PRNGKey(0), (BATCH, 32, 32, 3))
    y = jnp.arange(BATCH) % 10
    xla = get_module("resnet18", 10, norm="batch")
    variables = xla.init(jax.random.PRNGKey(1), x)

    def compiled(module):
        def loss(params):
            out, _ = module.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

        f = jax.jit(jax.value_and_grad(loss))
        jax.block_until_ready(f(variables["params"]))  # traced now, under the current rule
        return f

    fns = {"none (xla)": compiled(xla)}
    wino = get_module("resnet18", 10, norm="batch", conv_impl="winograd")
    saved = W.MIN_TILES
    for c in (64, 128, 256, 512):  # rhs is HWIO: rhs[2] is the input channel count
        W.covers, W.MIN_TILES = (lambda lhs, rhs, *a, c=c, **k: rhs[2] == c and shipped(lhs, rhs, *a, **k)), 0
        try:
            fns[f"C = {c} only"] = compiled(wino)
        finally:
            W.covers, W.MIN_TILES = shipped, saved
    fns["shipped rule"] = compiled(wino)
    med = interleaved_ms({name: (lambda f=f: f(variables["params"])) for name, f in fns.items()}, 7)
    for name in fns:
        print(f"  {name:<14} {med[name]:8.0f} ms   {med[name] / med['none (xla)']:.3f} x xla", flush=True)


def models() -> None:
    print("part 3: each conv model (batch norm, width 64, 32x32 inputs, batch 32), conv_impl xla vs winograd, "
          "1 thread: training value_and_grad and an eval-mode forward pass; interleaved, median of 5")
    x = jax.random.normal(jax.random.PRNGKey(0), (BATCH, 32, 32, 3))
    y = jnp.arange(BATCH) % 10
    for name in ("resnet18", "resnet50", "vgg16"):
        fns = {}
        for impl in ("xla", "winograd"):
            module = get_module(name, 10, norm="batch", conv_impl=impl)
            variables = module.init(jax.random.PRNGKey(1), x[:1])

            def loss(params, module=module, variables=variables):
                out, _ = module.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
                return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

            train = jax.jit(jax.value_and_grad(loss))
            evaluate = jax.jit(lambda params, module=module, variables=variables: module.apply(
                {**variables, "params": params}, x))
            fns[impl] = (train, evaluate, variables["params"])
            jax.block_until_ready((train(variables["params"]), evaluate(variables["params"])))
        med = interleaved_ms({(impl, k): (lambda f=f, p=params: f(p)) for impl, (train, evaluate, params) in fns.items()
                              for k, f in enumerate((train, evaluate))}, 5)
        print(f"  {name:<9} train step xla {med[('xla', 0)]:7.0f} ms, winograd {med[('winograd', 0)]:7.0f} ms "
              f"({med[('winograd', 0)] / med[('xla', 0)]:.3f}); eval forward xla {med[('xla', 1)]:6.0f} ms, "
              f"winograd {med[('winograd', 1)]:6.0f} ms ({med[('winograd', 1)] / med[('xla', 1)]:.3f})", flush=True)


if __name__ == "__main__":
    parts = sys.argv[1:] or ["shapes", "stages", "models"]
    for part in parts:
        {"shapes": shapes, "stages": stages, "models": models}[part]()
