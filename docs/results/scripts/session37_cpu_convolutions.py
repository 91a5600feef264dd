"""Session 37 (issue #15): XLA:CPU's YNNPACK convolutions against XLA's own, per layer and per training step.

XLA:CPU (jaxlib 0.10.2 and 0.12 alike) sends each convolution to YNNPACK by default
(``LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION`` in ``xla_cpu_experimental_ynn_fusion_type``). This times,
interleaved in one process, programs compiled with XLA's defaults (``default``) against the same programs
compiled with :mod:`ballot_jax.compiler`'s options (``ballot_jax``: the option without convolutions):

- ``layers``: ResNet-18's 3x3 stride-1 convolutions (batch 32) alone, forward, input gradient and weight
  gradient (median of 7 each, after two warm-up calls), and the weight gradient's max |difference| / max |value| between the two;
- ``steps`` (default): the engine's masked training step (``engine.loop.Trainer.step_fn``, 90% magnitude
  mask, SGD momentum) of the MLP and SmallCNN (loop benchmark's sizes, batch 64) and of ResNet-18
  (batch norm, batch 32), per step, median over rounds of K steps, the two compilations alternating.

    PYTHONPATH=. python docs/results/scripts/session37_cpu_convolutions.py [layers|steps] [--threads N]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 0
if THREADS:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:THREADS]))

import jax  # noqa: E402
from jax import lax  # noqa: E402

from ballot_jax import compiler  # noqa: E402
from benchmarks.common import time_fn  # noqa: E402

DN = ("NHWC", "HWIO", "NHWC")
STAGES = ((64, 32), (128, 16), (256, 8), (512, 4))  # (channels, map side) of ResNet-18's CIFAR stages


def both(fun):
    """``fun`` compiled with XLA's defaults and with ballot_jax's options."""
    return {"default": jax.jit(fun), "ballot_jax": compiler.jit(fun)}


def layers():
    print("layer (batch 32)  | forward default / ballot_jax ms | input grad | weight grad | weight grad rel. diff")
    for c, h in STAGES:
        kx, kd, kw = jax.random.split(jax.random.PRNGKey(c), 3)
        x, dy = jax.random.normal(kx, (32, h, h, c)), jax.random.normal(kd, (32, h, h, c))
        w = 0.05 * jax.random.normal(kw, (3, 3, c, c))
        conv = lambda x_, w_: lax.conv_general_dilated(x_, w_, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
        programs = {
            "forward": both(conv),
            "input": both(lambda x_, w_, dy_: jax.vjp(lambda v: conv(v, w_), x_)[1](dy_)[0]),
            "weight": both(lambda x_, w_, dy_: jax.vjp(lambda v: conv(x_, v), w_)[1](dy_)[0]),
        }
        args = {"forward": (x, w), "input": (x, w, dy), "weight": (x, w, dy)}
        cells = [" / ".join(f"{1e3 * np.median(time_fn(f, *args[k], repeats=7, warmup=2)):.1f}"
                            for f in programs[k].values()) for k in programs]
        a, b = (np.asarray(f(x, w, dy)) for f in programs["weight"].values())
        print(f"{c:>3} ch at {h:>2}x{h:<2}     | {cells[0]:>15} | {cells[1]:>13} | {cells[2]:>13} | "
              f"{np.max(np.abs(a - b)) / np.max(np.abs(a)):.1e}", flush=True)


def steps(rounds=7):
    from benchmarks import common
    from benchmarks.loop import SPARSITY, synthetic_dataset
    from ballot_jax.engine import loop as engine_loop
    from ballot_jax.engine.loop import Task, TrainConfig, Trainer, init_state, set_mask
    from ballot_jax.engine.mesh import data_mesh, put_batch
    from ballot_jax.models import get_model

    specs = (("mlp", {}, 64, 100), ("small_cnn", {}, 64, 10), ("resnet18", {"norm": "batch"}, 32, 1))
    mesh = data_mesh(jax.devices()[:1])
    print("model      K  | step ms: default / ballot_jax | ratio (paired median)")
    for name, kwargs, batch_size, k in specs:
        task = Task(get_model(name, num_classes=10, **kwargs), synthetic_dataset((32, 32, 3), 1000), mesh)
        config = TrainConfig(steps=500, batch_size=batch_size, checkpoint_every=0)
        state = init_state(task, config)
        mask = common.magnitude_mask(state.params, SPARSITY)
        state = engine_loop.replicate(set_mask(state, jax.tree.map(
            lambda m: None if m is None else jax.numpy.asarray(m), mask, is_leaf=lambda m: m is None)), mesh)
        batch = put_batch(Trainer(task).batch(config, 0, 0), mesh)
        step_fns = {}
        for variant, options in (("default", None), ("ballot_jax", compiler.compiler_options())):
            saved = compiler.compiler_options
            compiler.compiler_options = lambda platform=None, o=options: o
            engine_loop._STEP_CACHE.clear()  # a fresh compilation of the same step
            try:
                step_fns[variant] = Trainer(task).step_fn(config)
            finally:
                compiler.compiler_options = saved

        def run(step):
            s, stats = state, None
            for _ in range(k):
                s, stats = step(s, batch)
            return jax.block_until_ready(stats)

        times = {v: [] for v in step_fns}
        for f in step_fns.values():
            run(f), run(f)
        for _ in range(rounds):
            for v, f in step_fns.items():
                t = time.perf_counter()
                run(f)
                times[v].append((time.perf_counter() - t) / k * 1e3)
        ratio = np.median(np.asarray(times["ballot_jax"]) / np.asarray(times["default"]))
        print(f"{name:<10} {k:>3} | {np.median(times['default']):8.2f} / {np.median(times['ballot_jax']):8.2f} | "
              f"{ratio:.3f}", flush=True)


if __name__ == "__main__":
    print(f"jax {jax.__version__}, {len(os.sched_getaffinity(0))} core(s), options {compiler.compiler_options()}")
    (layers if "layers" in sys.argv[1:2] else steps)()
