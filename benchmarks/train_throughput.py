"""Training throughput of the engine (``Trainer.train``): images/s and the fraction of the chip's peak.

A short ResNet-18 CIFAR-10 training run (CIFAR stem, width 64, batch norm, 32x32x3, 10 classes;
the engine's masked step, SGD momentum 0.9 + weight decay, cosine lr; float32 parameters and
activations as everywhere in ballot_jax) through ``engine.loop.Trainer.train``, exactly as the
experiments train:

1. ``--warmup-steps`` steps (compilation included), untimed except for the total;
2. ``--repeats`` timed segments of ``--steps`` steps each, continuing the same run; each segment
   ends in ``block_until_ready``. images/s = steps x batch / seconds, the median over segments;
3. for reference, the bare jitted step on one device-resident batch (no host batch preparation).

FLOPs per image are XLA's own count for the compiled train step (``cost_analysis()["flops"]`` /
batch) and, for comparison, the usual estimate for ResNet-18 at 32x32 (0.56 GFLOP forward, x3 for
forward + backward). The fraction of peak uses the chip's dense **bf16** peak (H100/H200: 989
TFLOP/s; ``--peak-tflops`` for others): a float32 run cannot reach it -- the figure says how far the
f32 engine is from what the chip could do.

Data: ``--data auto`` uses the real CIFAR-10 archive if there is one (``--data-dir``, else
``../shared/data/cifar10-jpeg.zip`` or ``./shared/data/cifar10-jpeg.zip``), reading
``--max-per-class`` images per class; otherwise, or with ``--data synthetic``, Gaussian noise of the
same shape (throughput does not depend on what the pixels are).

    python -m benchmarks.train_throughput [--batch 128] [--steps 100] [--repeats 3] [--warmup-steps 20]
        [--data auto|synthetic|cifar10] [--data-dir PATH] [--json PATH] [--markdown PATH] [--quick]
"""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Any

from benchmarks import common

NOMINAL_FWD_FLOPS = {"resnet18": 0.56e9}  # per 32x32 image, the usual ResNet-18 CIFAR estimate
# Dense bf16 peak, FLOP/s, by a substring of jax's device_kind (first match wins).
BF16_PEAK = (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12), ("V100", 125e12))


def peak_flops(device_kind: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for key, value in BF16_PEAK:
        if key.lower() in device_kind.lower():
            return value
    return None


def find_cifar10(data_dir: str | None) -> str | None:
    if data_dir:
        return data_dir
    for base in (common.REPO_ROOT.parent / "shared", common.REPO_ROOT / "shared"):
        path = base / "data" / "cifar10-jpeg.zip"
        if path.exists():
            return str(path)
    return None


def load_data(args, batch: int) -> tuple[Any, str]:
    from benchmarks.loop import synthetic_dataset

    wanted = args.data == "cifar10" or (args.data == "auto" and not args.quick)  # --quick: noise unless asked
    path = find_cifar10(args.data_dir) if wanted else None
    if args.data == "cifar10" and path is None:
        raise SystemExit("--data cifar10: no archive found; pass --data-dir")
    if path is not None:
        from ballot_jax.data import load_dataset

        t0 = time.perf_counter()
        data = load_dataset("cifar10", data_dir=path, source="raw", max_per_class=args.max_per_class)
        print(f"[data] CIFAR-10 from {path}: {data.train.num_examples} train images "
              f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr, flush=True)
        return data, f"cifar10:{path}"
    shape = (8, 8, 3) if args.quick else (32, 32, 3)
    return synthetic_dataset(shape, max(batch * 4, 64 if args.quick else 1024)), "synthetic"


def xla_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 -- not every backend implements it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost["flops"]) if cost and "flops" in cost else None


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=3)
    parser.add_argument("--model", default="resnet18", help="a ballot_jax model name (default resnet18)")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default 128; --quick 8)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed segment (default 100; --quick 3)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="untimed first steps (default 20; --quick 2)")
    parser.add_argument("--data", choices=("auto", "synthetic", "cifar10"), default="auto")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 zip or folder (default: ../shared/data)")
    parser.add_argument("--max-per-class", type=int, default=1000, help="real images read per class (default 1000)")
    parser.add_argument("--devices", type=int, default=1, help="devices of the data mesh (default 1)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense bf16 peak, TFLOP/s")
    parser.add_argument("--markdown", metavar="PATH", default=None, help="also write a Markdown summary")
    args = parser.parse_args(argv)
    common.check_args(args)
    batch = args.batch or (8 if args.quick else 128)
    steps = args.steps or (3 if args.quick else 100)
    warmup = args.warmup_steps or (2 if args.quick else 20)

    import jax
    import numpy as np

    from ballot_jax.engine.loop import Task, TrainConfig, Trainer, init_state
    from ballot_jax.engine.mesh import data_mesh, put_batch
    from ballot_jax.models import get_model

    kwargs = {"width": 4 if args.quick else 64, "norm": "batch", "stem": "cifar"} if args.model == "resnet18" else {}
    data, data_desc = load_data(args, batch)
    mesh = data_mesh(jax.devices()[: args.devices])
    task = Task(get_model(args.model, num_classes=data.info.num_classes, **kwargs), data, mesh)
    total_steps = warmup + steps * args.repeats
    config = TrainConfig(steps=total_steps, batch_size=batch, checkpoint_every=0)
    trainer = Trainer(task)
    state = init_state(task, config)
    step_fn = trainer.step_fn(config)
    one_batch = put_batch(trainer.batch(config, 0, 0), mesh)
    t0 = time.perf_counter()
    flops_step = xla_flops(step_fn.lower(state, one_batch).compile())
    compile_s = time.perf_counter() - t0

    print(f"[{args.model}] batch {batch}, {warmup} warm-up steps (compiles) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    state = jax.block_until_ready(trainer.train(state, config, warmup, data_seed=0))
    warmup_s = time.perf_counter() - t0
    segments = []
    for r in range(args.repeats):
        until = warmup + steps * (r + 1)
        t0 = time.perf_counter()
        state = jax.block_until_ready(trainer.train(state, config, until, data_seed=0))
        segments.append(time.perf_counter() - t0)
        print(f"[{args.model}] segment {r + 1}/{args.repeats}: {steps * batch / segments[-1]:.1f} images/s",
              file=sys.stderr, flush=True)
    final_loss = float(step_fn(state, one_batch)[1]["loss"])

    def bare():
        s = state
        for _ in range(steps):
            s, stats = step_fn(s, one_batch)
        return s, stats

    bare_s = common.time_fn(bare, repeats=args.repeats, warmup=1)

    per_step = float(np.median(segments)) / steps
    ips = batch / per_step
    bare_ips = batch * steps / float(np.median(bare_s))
    device_kind = jax.devices()[0].device_kind
    peak = peak_flops(device_kind, args.peak_tflops)
    flops_img = flops_step / batch if flops_step else None
    nominal_img = 3 * NOMINAL_FWD_FLOPS[args.model] if args.model in NOMINAL_FWD_FLOPS and not args.quick else None

    def frac(f):
        return ips * f / peak if (f and peak) else None

    result = {
        "model": args.model, "model_kwargs": kwargs, "batch_size": batch, "devices": args.devices,
        "data": data_desc, "warmup_steps": warmup, "steps_per_segment": steps, "segments_s": segments,
        "compile_s": compile_s, "warmup_s": warmup_s, "ms_per_step": per_step * 1e3, "images_per_s": ips,
        "bare_step_images_per_s": bare_ips, "loop_over_bare": bare_ips / ips,
        "xla_flops_per_step": flops_step, "xla_flops_per_image": flops_img,
        "nominal_train_flops_per_image": nominal_img, "device_kind": device_kind, "bf16_peak_flops": peak,
        "achieved_tflops_xla_count": ips * flops_img / 1e12 if flops_img else None,
        "fraction_of_bf16_peak_xla_count": frac(flops_img),
        "fraction_of_bf16_peak_nominal": frac(nominal_img),
        "final_train_loss": final_loss,
    }

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    rows = [[args.model, device_kind, batch, f"{per_step * 1e3:.2f}", f"{ips:.1f}", f"{bare_ips:.1f}",
             fmt(flops_img and flops_img / 1e9, ".3f"), fmt(result["achieved_tflops_xla_count"], ".2f"),
             fmt(result["fraction_of_bf16_peak_xla_count"], ".4f"), fmt(result["fraction_of_bf16_peak_nominal"], ".4f")]]
    headers = ["model", "device", "batch", "ms/step", "images/s", "bare img/s", "GFLOP/img (XLA)", "TFLOP/s",
               "frac bf16 peak", "frac (nominal)"]
    notes = [
        f"train_throughput: Trainer.train, {args.model}, data {data_desc}; {args.repeats} x {steps} timed steps after "
        f"{warmup} warm-up steps ({warmup_s:.1f}s; compilation before them {compile_s:.1f}s); train loss {final_loss:.3f}.",
        "images/s: median over segments; bare: the jitted step alone on one device-resident batch. Fraction of the",
        "dense bf16 peak" + (f" ({peak / 1e12:.0f} TFLOP/s)" if peak else " (unknown for this device: --peak-tflops)")
        + " with XLA's FLOP count and with the nominal 3 x 0.56 GFLOP/image; the run is float32."
        + (" (--quick: sizes too small to mean anything)" if args.quick else ""),
    ]
    if args.markdown:
        md = ["# Training throughput", "", *notes, "", "| " + " | ".join(headers) + " |",
              "|" + "---|" * len(headers), *["| " + " | ".join(str(c) for c in r) + " |" for r in rows], ""]
        path = pathlib.Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(md))
    common.finish(args, "train_throughput", headers, rows, {"result": result}, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
