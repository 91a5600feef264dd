"""The training loop's own cost: ``engine.loop.Trainer.train`` per step vs. the bare jitted step.

Per model (SmallCNN (32, 64)/128 and the MLP (128, 128), 32x32x3 inputs, batch 64, one device, a
90% magnitude mask as in every pruned level), with the same compiled step (``Trainer.step_fn``):

  bare            the jitted step alone: ``state, stats = step(state, batch)`` K times on ONE batch
                  already on the device, nothing else (the device pipelines freely) -- the baseline
  bare_gather     the same compiled step with the batch gathered on the device from fixed indices
                  (``engine.device_data.gathering``), nothing else: the step as the loop runs it,
                  minus the loop (so loop / bare_gather is the loop's own overhead)
  loop            ``Trainer.train(state, config, K, data_seed=0)`` as runs use it: per step the host
                  draws the batch's indices (``shuffled_batch`` over the training set), puts them
                  on the mesh and dispatches the step, which gathers the rows from the
                  device-resident training set (``engine.device_data``); on one device at most
                  ``MAX_STEPS_IN_FLIGHT_ONE_DEVICE`` (16) steps in flight
  loop_host_batches  the same with the rows gathered on the host and transferred (the path of
                  training sets over ``DEVICE_DATA_MAX_BYTES``; every run before session 5)
  loop_bound2     the same as ``loop`` with at most 2 steps in flight (the bound of a mesh of
                  several devices, ``MAX_STEPS_IN_FLIGHT``)
  host_indices    only the host side of ``loop``'s batches: K x ``Trainer.batch_indices`` (on one
                  process the indices go into the step's dispatch as NumPy, which places them;
                  until session 23 each was ``put_batch``'ed first, ~0.1 ms a step)

Each timed sample is one call of K steps from the same start state; times are ms per step. A run calls
``Trainer.train`` once a phase (200 steps a level in the README main job, ``experiments.digits``; 300
in the other experiments; SafeCompress's probes are the shorter calls), so a call's own setup (~0.5 ms
of host time) is paid once per phase: K is that phase length, ``PHASE_STEPS`` = 200, for the MLP, whose
step (~1.4 ms) would otherwise carry the setup at ten times a run's weight, and 20 for SmallCNN, whose
45 ms step makes the setup negligible at any K (0.05% at 20). ``--steps K`` sets K for both. Target:
loop / bare <= 1.05. The progress bar is off when stderr is not a terminal (or CI is set), as in real
runs; the JSON records whether it was on.

    python -m benchmarks.loop [--repeats N] [--json PATH] [--quick] [--steps K] [--train-size N]
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks import common

TARGET = 1.05
SPARSITY = 0.9
PHASE_STEPS = 200  # experiments.digits (the README main job) trains 200 steps a level, one Trainer.train call


def model_specs(quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [{"label": "small_cnn", "name": "small_cnn", "kwargs": {"channels": (4, 8), "dense": 16},
                 "shape": (8, 8, 3), "batch": 8, "steps": 4}]
    return [
        {"label": "small_cnn", "name": "small_cnn", "kwargs": {}, "shape": (32, 32, 3), "batch": 64, "steps": 20},
        {"label": "mlp", "name": "mlp", "kwargs": {}, "shape": (32, 32, 3), "batch": 64, "steps": PHASE_STEPS},
    ]


def synthetic_dataset(shape: tuple[int, ...], n_train: int, num_classes: int = 10, num_groups: int = 2):
    """A ``ballot_jax.data.Dataset`` of Gaussian noise (the loop does not care what it learns)."""
    import numpy as np

    from ballot_jax.data.base import Dataset, DatasetInfo, Split

    rng = np.random.default_rng(0)

    def split(n):
        return Split(rng.normal(size=(n, *shape)).astype(np.float32),
                     rng.integers(0, num_classes, size=n).astype(np.int32),
                     rng.integers(0, num_groups, size=n).astype(np.int32))

    info = DatasetInfo("noise", num_classes, num_groups, tuple(f"g{g}" for g in range(num_groups)),
                       tuple(f"c{c}" for c in range(num_classes)), tuple(shape))
    return Dataset(split(n_train), split(num_classes), split(num_classes), info)


def build(spec: dict[str, Any], steps: int, n_train: int) -> dict[str, Any]:
    import jax
    import numpy as np

    from ballot_jax.engine import device_data, loop as engine_loop
    from ballot_jax.engine.loop import Task, TrainConfig, Trainer, init_state, set_mask
    from ballot_jax.engine.mesh import data_mesh, put_batch
    from ballot_jax.engine.progress import quiet
    from ballot_jax.models import get_model

    mesh = data_mesh(jax.devices()[:1])
    data = synthetic_dataset(spec["shape"], n_train)
    task = Task(get_model(spec["name"], num_classes=10, **spec["kwargs"]), data, mesh)
    config = TrainConfig(steps=500, batch_size=spec["batch"], checkpoint_every=0)
    trainer = Trainer(task)
    state = init_state(task, config)
    mask = common.magnitude_mask(state.params, SPARSITY)
    state = set_mask(state, jax.tree.map(lambda m: None if m is None else jax.numpy.asarray(m), mask,
                                         is_leaf=lambda x: x is None))
    state = jax.block_until_ready(engine_loop.replicate(state, mesh))
    step = trainer.step_fn(config)
    batch = put_batch(trainer.batch(config, 0, 0), mesh)

    def bare():
        s = state
        for _ in range(steps):
            s, stats = step(s, batch)
        return s, stats

    data = device_data.device_train_data(task.data.train, mesh)
    gathered = device_data.gathering(step, mesh)
    idx = put_batch(trainer.batch_indices(config, 0, 0), mesh)

    def bare_gather():
        s = state
        for _ in range(steps):
            s, stats = gathered(s, data, idx)
        return s, stats

    def run_loop():
        return trainer.train(state, config, steps, data_seed=0)

    def patched(module, name, value):
        def run():
            saved = getattr(module, name)
            setattr(module, name, value)
            try:
                return trainer.train(state, config, steps, data_seed=0)
            finally:
                setattr(module, name, saved)

        return run

    def host_indices():
        b = None
        for k in range(steps):
            b = trainer.batch_indices(config, k, 0)
        return b

    return {
        "variants": {
            "bare": bare,
            "bare_gather": bare_gather,
            "loop": run_loop,
            "loop_host_batches": patched(device_data, "DEVICE_DATA_MAX_BYTES", 0),
            "loop_bound2": patched(engine_loop, "MAX_STEPS_IN_FLIGHT_ONE_DEVICE", 2),
            "host_indices": host_indices,
        },
        "max_steps_in_flight": engine_loop.MAX_STEPS_IN_FLIGHT_ONE_DEVICE,
        "progress_bar": not quiet(),
        "num_params": int(sum(np.size(p) for p in jax.tree.leaves(state.params))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=15)
    parser.add_argument("--steps", type=int, default=None, help="steps per timed sample K, for every model (default: SmallCNN 20, "
                        f"MLP {PHASE_STEPS}, a phase; --quick 4)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training examples the loop samples from (default 10000; --quick 64)")
    args = parser.parse_args(argv)
    common.check_args(args)
    n_train = args.train_size or (64 if args.quick else 10_000)
    if (args.steps is not None and args.steps < 1) or n_train < 1:
        raise SystemExit("--steps and --train-size must be >= 1")
    rows, measurements, over_gather = [], {}, {}
    for spec in model_specs(args.quick):
        label = spec["label"]
        steps = args.steps or spec["steps"]
        print(f"[{label}] building and compiling ({steps} steps a sample) ...", file=sys.stderr, flush=True)
        b = build(spec, steps, n_train)
        res = common.compare(b["variants"], repeats=args.repeats, warmup=args.warmup, number=1)
        # per step, not per K-step sample
        for r in res.values():
            r["samples_s"] = [s / steps for s in r["samples_s"]]
        base = res["bare"]["samples_s"]
        measurements[label] = {"model": spec["name"], "model_kwargs": spec["kwargs"], "batch_size": spec["batch"],
                               "input_shape": list(spec["shape"]), "train_size": n_train, "steps_per_sample": steps,
                               "num_params": b["num_params"], "max_steps_in_flight": b["max_steps_in_flight"],
                               "progress_bar": b["progress_bar"], "variants": {}}
        over_gather[label] = common.measured(res["loop"], res["bare_gather"]["samples_s"])["ratio"]
        for name, r in res.items():
            m = measurements[label]["variants"][name] = common.measured(r, base)
            target = common.target_mark(m["ratio"], TARGET) if name == "loop" else ""
            rows.append([label, name, str(steps), common.ms(m["median_s"]), common.ms(m["iqr_s"]), f"{m['ratio']:.3f}",
                         f"{m['first_call_s']:.2f}", target])
    notes = [
        "loop: Trainer.train per step vs the bare jitted step (same compiled step, model and batch size),",
        f"1 device, K steps per sample (one Trainer.train call), training set of {n_train}; ms per step; ratio = median of paired",
        f"per-repetition ratios to 'bare'. Target loop/bare <= {TARGET:.2f}. "
        f"(steps in flight on one device: {b['max_steps_in_flight']}; 1st call s = the first K-step sample)."
        " loop / bare_gather (the loop's own overhead, the on-device gather excluded): "
        + ", ".join(f"{k} {v:.3f}" for k, v in over_gather.items())
        + (" (--quick: sizes too small to mean anything)" if args.quick else ""),
    ]
    common.finish(
        args, "loop",
        ["model", "variant", "K", "median ms", "IQR ms", "vs bare", "1st call s", "target"],
        rows,
        {"target_ratio": TARGET, "measurements": measurements,
         "loop_over_bare": {k: m["variants"]["loop"]["ratio"] for k, m in measurements.items()},
         "loop_over_bare_gather": over_gather},
        notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
