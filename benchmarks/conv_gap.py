"""Where ResNet-18's CPU gap to PyTorch lives: each of its convolution shapes, JAX vs PyTorch eager.

``vs_torch`` measures the whole ResNet-18 step. This times each distinct convolution of ResNet-18
(CIFAR stem, width 64, batch 32, NHWC/HWIO in JAX, NCHW/OIHW in PyTorch, the same data) on its own:
the forward pass, and the gradient with respect to input and kernel (``jax.vjp`` /
``torch.autograd.grad`` with a cotangent of ones; PyTorch's backward is timed as forward + backward
minus its forward, since autograd cannot run one without the other).
Variants are interleaved per shape (``benchmarks.common.compare``); the table gives JAX / PyTorch
per shape and the count of such convolutions in the model, and ``weighted`` sums the medians over
the model's convolutions. The first forward of each shape is checked against PyTorch's. JAX's programs
are compiled as ballot_jax compiles its own (:mod:`ballot_jax.compiler`).

    python -m benchmarks.conv_gap [--threads N] [--repeats N] [--json PATH] [--quick]

Skips cleanly (exit 0) where PyTorch is not installed; CPU only (JAX is kept on the CPU).
"""

from __future__ import annotations

import os
import sys

from benchmarks import common

BENCHMARK = "conv_gap"
SKIP_MESSAGE = "conv_gap: skipped, PyTorch is not installed (pip install 'ballot_jax[bench]')"
BATCH = 32
# (spatial size, in channels, out channels, kernel, stride, how many in ResNet-18 with the CIFAR stem)
RESNET18_CONVS = (
    (32, 3, 64, 3, 1, 1), (32, 64, 64, 3, 1, 4), (32, 64, 128, 3, 2, 1), (32, 64, 128, 1, 2, 1),
    (16, 128, 128, 3, 1, 3), (16, 128, 256, 3, 2, 1), (16, 128, 256, 1, 2, 1), (8, 256, 256, 3, 1, 3),
    (8, 256, 512, 3, 2, 1), (8, 256, 512, 1, 2, 1), (4, 512, 512, 3, 1, 3),
)
QUICK_CONVS = ((8, 3, 8, 3, 1, 1), (8, 8, 16, 3, 2, 1), (8, 8, 16, 1, 2, 1))


def shape_variants(size: int, cin: int, cout: int, kernel: int, stride: int, torch, batch: int):
    """The four timed callables of one convolution shape and the forward outputs' max |difference|."""
    import jax
    import numpy as np

    from ballot_jax import compiler

    rng = np.random.default_rng(size * 1000 + cin + cout + kernel + stride)
    x = rng.normal(size=(batch, size, size, cin)).astype(np.float32)
    w = (rng.normal(size=(kernel, kernel, cin, cout)) / np.sqrt(kernel * kernel * cin)).astype(np.float32)
    pad = (kernel - 1) // 2

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    forward = compiler.jit(conv)
    out = np.asarray(forward(x, w))
    cotangent = np.ones_like(out)
    gradient = compiler.jit(lambda x, w, ct: jax.vjp(conv, x, w)[1](ct))
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    tw = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).requires_grad_(True)
    tct = torch.from_numpy(cotangent.transpose(0, 3, 1, 2).copy())
    F = torch.nn.functional

    def torch_forward():
        with torch.no_grad():
            return F.conv2d(tx, tw, stride=stride, padding=pad)

    def torch_forward_backward():
        return torch.autograd.grad(F.conv2d(tx, tw, stride=stride, padding=pad), (tx, tw), tct)

    diff = float(np.abs(torch_forward().numpy().transpose(0, 2, 3, 1) - out).max())
    variants = {"jax_fwd": lambda: forward(x, w), "torch_fwd": torch_forward,
                "jax_grad": lambda: gradient(x, w, cotangent), "torch_fwd_bwd": torch_forward_backward}
    return variants, diff


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=11)
    parser.add_argument("--threads", type=int, default=None, help="restrict both frameworks to N cores")
    args = parser.parse_args(argv)
    common.check_args(args)
    if args.quick:
        common.add_xla_flags(*common.QUICK_XLA_FLAGS)
    affinity = common.thread_settings(args.threads)["cpu_affinity"]
    os.environ["JAX_PLATFORMS"] = "cpu"  # PyTorch runs on the CPU here: so does JAX, on any machine
    try:
        import torch
    except (ImportError, OSError):
        print(SKIP_MESSAGE)
        if args.json:
            common.write_json(args.json, {"benchmark": BENCHMARK, "skipped": SKIP_MESSAGE,
                                          "settings": {k: v for k, v in vars(args).items() if k != "json"}})
        return 0
    threads = len(affinity) if affinity else os.cpu_count()
    torch.set_num_threads(threads)

    rows, measurements = [], {}
    totals = {"jax_fwd": 0.0, "torch_fwd": 0.0, "jax_grad": 0.0, "torch_bwd": 0.0}
    for size, cin, cout, kernel, stride, count in (QUICK_CONVS if args.quick else RESNET18_CONVS):
        label = f"{size}x{size} {cin}->{cout} k{kernel} s{stride}"
        print(f"[conv_gap] {label}", file=sys.stderr)
        variants, diff = shape_variants(size, cin, cout, kernel, stride, torch, 4 if args.quick else BATCH)
        res = common.compare(variants, repeats=args.repeats, warmup=args.warmup)
        torch_bwd = [fb - f for fb, f in zip(res["torch_fwd_bwd"]["samples_s"], res["torch_fwd"]["samples_s"])]
        fwd = common.paired_ratio(res["jax_fwd"]["samples_s"], res["torch_fwd"]["samples_s"])
        grad = common.paired_ratio(res["jax_grad"]["samples_s"], torch_bwd)
        medians = {"jax_fwd": common.summarize(res["jax_fwd"]["samples_s"])["median_s"],
                   "torch_fwd": common.summarize(res["torch_fwd"]["samples_s"])["median_s"],
                   "jax_grad": common.summarize(res["jax_grad"]["samples_s"])["median_s"],
                   "torch_bwd": common.summarize(torch_bwd)["median_s"]}
        for k in totals:
            totals[k] += count * medians[k]
        measurements[label] = {"count": count, "forward_max_abs_diff": diff, "medians_s": medians,
                               "forward_ratio": fwd, "gradient_ratio": grad,
                               "samples_s": {k: v["samples_s"] for k, v in res.items()}}
        rows.append([label, count, common.ms(medians["jax_fwd"]), common.ms(medians["torch_fwd"]),
                     f"{fwd['ratio']:.3f}", common.ms(medians["jax_grad"]), common.ms(medians["torch_bwd"]),
                     f"{grad['ratio']:.3f}", f"{diff:.1e}"])
    weighted = {"forward": totals["jax_fwd"] / totals["torch_fwd"], "gradient": totals["jax_grad"] / totals["torch_bwd"],
                "both": (totals["jax_fwd"] + totals["jax_grad"]) / (totals["torch_fwd"] + totals["torch_bwd"])}
    rows.append(["weighted (x count)", sum(m["count"] for m in measurements.values()), common.ms(totals["jax_fwd"]),
                 common.ms(totals["torch_fwd"]), f"{weighted['forward']:.3f}", common.ms(totals["jax_grad"]),
                 common.ms(totals["torch_bwd"]), f"{weighted['gradient']:.3f}", ""])
    headers = ["model conv (NHWC)", "n", "jax fwd", "torch fwd", "jax/torch", "jax grad", "torch bwd",
               "jax/torch", "fwd |diff|"]
    common.finish(args, BENCHMARK, headers, rows,
                  {"threads": threads, "torch": torch.__version__, "measurements": measurements, "weighted": weighted},
                  notes=[f"conv_gap: {threads} thread(s) each; JAX / PyTorch eager per ResNet-18 convolution, "
                         f"forward and gradient (input + kernel); weighted over the model: fwd {weighted['forward']:.3f}, "
                         f"grad {weighted['gradient']:.3f}, both {weighted['both']:.3f}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
