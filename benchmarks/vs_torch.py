"""PyTorch eager vs ballot_jax: the same masked train step, timed side by side in one process.

Per model, the same architecture in both frameworks with the SAME initial weights (copied from the
ballot_jax params), the same batch, the same 90% global-magnitude mask and the same optimizer (SGD,
momentum 0.9, weight decay 5e-4, cosine learning-rate schedule from 0.05 -- the engine's default
``make_optimizer(TrainConfig())``):

  torch       PyTorch eager: ``torch.nn.utils.prune.custom_from_mask`` on every conv/linear weight
              (as the Ballot authors' code masks: ``weight = weight_orig * weight_mask`` in a forward
              pre-hook), ``zero_grad -> forward -> cross_entropy -> backward -> SGD step ->
              scheduler step`` (+ the batch accuracy, which the engine step also computes)
  ballot_jax  ``engine.steps.make_train_step(model, optim.fixed_mask(tx, None), mesh)`` on a one-device
              mesh, with the mask in the optimizer state -- exactly what ``engine.loop.Trainer`` runs

Models: ``small_cnn`` (SmallCNN channels (16, 32), dense 64, no norm; 32x32x3, batch 64) and
``resnet18`` (CIFAR stem, width 64, batch norm; 32x32x3, batch 32), the latter also as
``ballot_jax_winograd`` (row ``resnet18+winograd``: the same model with ``conv_impl="winograd"``,
:mod:`ballot_jax.models.winograd`, in the same interleaved run). ``--extra`` adds two reference
variants: ``torch_nomask`` (PyTorch without the prune hooks) and ``jax_plain`` (a plain jit of the
masked step, no ``shard_map``). Every JAX program here is compiled as the engine compiles its own, with
:mod:`ballot_jax.compiler`'s options (on CPU: XLA's own convolutions instead of YNNPACK's).

Correctness first: one step from the same state in both frameworks must give the same loss and the
same updated (effective) weights (``max|dparam|``; PASS/FAIL, exit status 1 on FAIL). BatchNorm
running statistics are not compared (PyTorch tracks the unbiased variance, Flax the biased one; the
train step does not read them).

Threads: PyTorch and XLA:CPU both size their intra-op pools from the process's CPU affinity, so by
default both use every core this process may run on; ``--threads N`` restricts the process to N
cores (``os.sched_setaffinity``, before either library starts) and calls ``torch.set_num_threads(N)``.
Both counts are printed and written to the JSON. On a busy machine PyTorch's OpenMP threads
spin-wait and lose far more than XLA's (on a 2-core machine at load ~10, SmallCNN's PyTorch step took
14x longer on 2 threads than on 1): compare at ``--threads 1`` or with ``OMP_WAIT_POLICY=PASSIVE``.

Device: ``--device auto`` (default) compares the GPU paths (torch CUDA vs JAX GPU) when both
frameworks see a GPU, otherwise both run on the CPU.

PyTorch is optional (the ``bench`` extra: ``pip install -e '.[bench]'``; CPU-only wheel:
``pip install "torch==2.13.0+cpu"``). Without it the benchmark says so and exits 0.

The LAST lines printed are a short table: per model, the median ms per step of each framework and
the ratio ballot_jax / PyTorch (median of paired per-repetition ratios; < 1: ballot_jax faster).

    python -m benchmarks.vs_torch [--repeats N] [--json PATH] [--quick] [--threads N]
        [--device auto|cpu|gpu] [--models small_cnn,resnet18] [--extra]
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks import common

SPARSITY = 0.9
NUM_CLASSES = 10
BENCHMARK = "vs_torch"
# One step from the same state: the updated weights of both frameworks must agree to this (max
# absolute difference; float32, different conv algorithms). GPU convs may use TF32 in both.
ATOL = {"cpu": 2e-4, "gpu": 5e-3}
SKIP_MESSAGE = (
    "vs_torch: skipped: PyTorch is not installed. It is the optional 'bench' extra: "
    "pip install -e '.[bench]' (CPU-only wheel: pip install \"torch==2.13.0+cpu\")."
)


# Further ballot_jax steps timed beside the default one: variant name -> extra model kwargs.
JAX_VARIANTS = {"ballot_jax_winograd": {"conv_impl": "winograd"}}


def model_specs(quick: bool) -> list[dict[str, Any]]:
    if quick:
        return [
            {"label": "small_cnn", "name": "small_cnn",
             "kwargs": {"channels": (4, 8), "dense": 16, "norm": "none"}, "shape": (8, 8, 3), "batch": 8},
            {"label": "resnet18", "name": "resnet18",
             "kwargs": {"width": 4, "norm": "batch", "stem": "cifar"}, "shape": (8, 8, 3), "batch": 4,
             "jax_variants": JAX_VARIANTS},
        ]
    return [
        {"label": "small_cnn", "name": "small_cnn",
         "kwargs": {"channels": (16, 32), "dense": 64, "norm": "none"}, "shape": (32, 32, 3), "batch": 64},
        {"label": "resnet18", "name": "resnet18",
         "kwargs": {"width": 64, "norm": "batch", "stem": "cifar"}, "shape": (32, 32, 3), "batch": 32,
         "jax_variants": JAX_VARIANTS},
    ]


# ----------------------------------------------------------------------------------------------
# The PyTorch twins of ballot_jax.models.small.SmallCNN and ballot_jax.models.resnet.ResNet18.
# Each returns ``(module, pairs)``: ``pairs`` maps a Flax parameter path to the torch layer that
# holds it, with how to convert (see ``copy_from_jax``).


def torch_small_cnn(spec: dict[str, Any]):
    import torch.nn.functional as F
    from torch import nn

    kw = spec["kwargs"]
    if kw.get("norm", "none") != "none" or kw.get("dropout", 0.0):
        raise ValueError("the PyTorch SmallCNN twin has no normalisation and no dropout")
    channels, dense = tuple(kw["channels"]), int(kw["dense"])
    height, width, c_in = spec["shape"]

    class SmallCNN(nn.Module):
        """``[conv3x3 (bias) -> relu -> maxpool2x2] * len(channels) -> flatten -> Linear(dense) ->
        relu -> Linear(num_classes)``; Flax's SAME max-pool == ``ceil_mode=True``."""

        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList()
            cin = c_in
            for c in channels:
                self.convs.append(nn.Conv2d(cin, c, 3, 1, 1, bias=True))
                cin = c
            self.dense = nn.Linear(cin * out_h * out_w, dense)
            self.head = nn.Linear(dense, NUM_CLASSES)

        def forward(self, x):
            for conv in self.convs:
                x = F.max_pool2d(F.relu(conv(x)), 2, 2, ceil_mode=True)
            return self.head(F.relu(self.dense(x.flatten(1))))

    out_h, out_w = height, width
    for _ in channels:
        out_h, out_w = -(-out_h // 2), -(-out_w // 2)
    module = SmallCNN()
    pairs = [((f"Conv_{i}",), conv, "conv", None) for i, conv in enumerate(module.convs)]
    # Flax flattens NHWC (h, w, c order), PyTorch NCHW (c, h, w): permute the first dense kernel.
    pairs += [(("Dense_0",), module.dense, "flat_dense", (out_h, out_w, channels[-1])),
              (("head",), module.head, "dense", None)]
    return module, pairs


def torch_resnet18(spec: dict[str, Any]):
    import torch.nn.functional as F
    from torch import nn

    kw = spec["kwargs"]
    if kw.get("norm") != "batch" or kw.get("stem", "cifar") != "cifar":
        raise ValueError("the PyTorch ResNet-18 twin is the CIFAR-stem, batch-norm variant")
    width = int(kw.get("width", 64))

    def bn(c):  # Flax BatchNorm(momentum=0.9, epsilon=1e-5) == PyTorch momentum 0.1
        return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv0, self.bn0 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout)
            self.conv1, self.bn1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout)
            self.shortcut = stride != 1 or cin != cout
            if self.shortcut:
                self.shortcut_conv, self.shortcut_norm = nn.Conv2d(cin, cout, 1, stride, 0, bias=False), bn(cout)

        def forward(self, x):
            y = F.relu(self.bn0(self.conv0(x)))
            y = self.bn1(self.conv1(y))
            r = self.shortcut_norm(self.shortcut_conv(x)) if self.shortcut else x
            return F.relu(y + r)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem_conv, self.stem_norm = nn.Conv2d(spec["shape"][2], width, 3, 1, 1, bias=False), bn(width)
            self.blocks = nn.ModuleDict()
            cin = width
            for i in range(4):
                for j in range(2):
                    cout, stride = width * 2**i, (2 if (i > 0 and j == 0) else 1)
                    self.blocks[f"stage{i + 1}_block{j + 1}"] = BasicBlock(cin, cout, stride)
                    cin = cout
            self.head = nn.Linear(cin, NUM_CLASSES)

        def forward(self, x):
            x = F.relu(self.stem_norm(self.stem_conv(x)))
            for block in self.blocks.values():
                x = block(x)
            return self.head(x.mean(dim=(2, 3)))

    module = ResNet18()
    pairs = [(("stem_conv",), module.stem_conv, "conv", None), (("stem_norm",), module.stem_norm, "bn", None)]
    for name, block in module.blocks.items():
        pairs += [((name, "Conv_0"), block.conv0, "conv", None), ((name, "BatchNorm_0"), block.bn0, "bn", None),
                  ((name, "Conv_1"), block.conv1, "conv", None), ((name, "BatchNorm_1"), block.bn1, "bn", None)]
        if block.shortcut:
            pairs += [((name, "shortcut_conv"), block.shortcut_conv, "conv", None),
                      ((name, "shortcut_norm"), block.shortcut_norm, "bn", None)]
    pairs.append((("head",), module.head, "dense", None))
    return module, pairs


TORCH_MODELS = {"small_cnn": torch_small_cnn, "resnet18": torch_resnet18}


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def kernel_to_torch(kernel, kind: str, extra: Any):
    """A Flax kernel (NumPy) in the layout of the torch layer's ``weight``."""
    import numpy as np

    k = np.asarray(kernel)
    if kind == "conv":  # HWIO -> OIHW
        return k.transpose(3, 2, 0, 1)
    if kind == "dense":  # [in, out] -> [out, in]
        return k.T
    if kind == "flat_dense":  # rows in (h, w, c) order -> columns in (c, h, w) order
        h, w, c = extra
        return k.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(k.shape[1], -1)
    raise ValueError(kind)


def kernel_from_torch(weight, kind: str, extra: Any, shape: tuple[int, ...]):
    """Inverse of ``kernel_to_torch`` (NumPy in, NumPy out, Flax layout ``shape``)."""
    import numpy as np

    w = np.asarray(weight)
    if kind == "conv":
        return w.transpose(2, 3, 1, 0)
    if kind == "dense":
        return w.T
    if kind == "flat_dense":
        h, wd, c = extra
        return w.reshape(-1, c, h, wd).transpose(2, 3, 1, 0).reshape(shape)
    raise ValueError(kind)


def copy_from_jax(pairs, params, model_state, device) -> None:
    """Load the Flax params (and BatchNorm statistics) into the torch layers, in place."""
    import numpy as np
    import torch

    def t(a):
        return torch.tensor(np.array(a, dtype=np.float32), device=device)  # a writable copy

    stats = model_state.get("batch_stats", {}) if isinstance(model_state, dict) else {}
    with torch.no_grad():
        for path, layer, kind, extra in pairs:
            p = _get(params, path)
            if kind == "bn":
                layer.weight.copy_(t(p["scale"]))
                layer.bias.copy_(t(p["bias"]))
                s = _get(stats, path)
                layer.running_mean.copy_(t(s["mean"]))
                layer.running_var.copy_(t(s["var"]))
                continue
            layer.weight.copy_(t(kernel_to_torch(p["kernel"], kind, extra)))
            if "bias" in p:
                layer.bias.copy_(t(p["bias"]))


def prune_like_authors(pairs, mask, device) -> None:
    """``torch.nn.utils.prune.custom_from_mask`` on every layer whose Flax kernel is masked."""
    import numpy as np
    import torch
    from torch.nn.utils import prune

    for path, layer, kind, extra in pairs:
        if kind == "bn":
            continue
        m = _get(mask, path).get("kernel")
        if m is None:
            continue
        m_t = torch.as_tensor(np.ascontiguousarray(kernel_to_torch(m, kind, extra)).astype(np.float32), device=device)
        prune.custom_from_mask(layer, "weight", m_t)


def torch_effective_params(pairs, params_like) -> dict:
    """The torch weights in the Flax params' structure and layout (masked: ``weight_orig * mask``)."""
    import numpy as np

    out: dict = {}
    for path, layer, kind, extra in pairs:
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        leaf = node.setdefault(path[-1], {})
        ref = _get(params_like, path)
        if kind == "bn":
            leaf["scale"] = layer.weight.detach().cpu().numpy()
            leaf["bias"] = layer.bias.detach().cpu().numpy()
            continue
        w = layer.weight_orig * layer.weight_mask if hasattr(layer, "weight_orig") else layer.weight
        leaf["kernel"] = kernel_from_torch(w.detach().cpu().numpy(), kind, extra, np.shape(ref["kernel"]))
        if "bias" in ref:
            leaf["bias"] = layer.bias.detach().cpu().numpy()
    return out


# ----------------------------------------------------------------------------------------------


def build(spec: dict[str, Any], device: str, extra: bool) -> dict[str, Any]:
    """Both frameworks' steps for one model, checked against each other on one step."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    from ballot_jax.engine.loop import TrainConfig, make_optimizer
    from ballot_jax.engine.mesh import data_mesh, put_batch, replicated
    from ballot_jax.engine.steps import TrainState, make_train_step
    from ballot_jax.models import get_model
    from ballot_jax.optim import FixedMaskState, fixed_mask

    config = TrainConfig()  # SGD momentum 0.9, weight decay 5e-4, cosine from 0.05 over 500 steps
    jax_device = jax.devices("gpu" if device == "gpu" else "cpu")[0]
    mesh = data_mesh([jax_device])
    tdev = torch.device("cuda" if device == "gpu" else "cpu")

    # --- ballot_jax
    model = get_model(spec["name"], num_classes=NUM_CLASSES, **spec["kwargs"])
    rng = np.random.default_rng(0)
    n = spec["batch"]
    batch = {
        "x": rng.normal(size=(n, *spec["shape"])).astype(np.float32),
        "y": rng.integers(0, NUM_CLASSES, size=n).astype(np.int32),
        "group": rng.integers(0, 2, size=n).astype(np.int32),
    }
    key = jax.random.PRNGKey(0)
    with jax.default_device(jax_device):
        params, model_state = jax.jit(model.init)(key, jnp.asarray(batch["x"][:1]))
    params, model_state = jax.device_get(params), jax.device_get(model_state)
    mask = common.magnitude_mask(params, SPARSITY)
    params = common.apply_mask_host(params, mask)
    tx = make_optimizer(config)
    state = jax.device_put(
        TrainState(jnp.zeros((), jnp.int32), params, model_state, FixedMaskState(tx.init(params), mask),
                   jax.random.fold_in(key, 1)),
        replicated(mesh),
    )
    jbatch = put_batch(batch, mesh)
    jax_step = make_train_step(model, fixed_mask(tx, None), mesh)
    alt_steps = {
        name: make_train_step(get_model(spec["name"], num_classes=NUM_CLASSES, **{**spec["kwargs"], **kw}),
                              fixed_mask(tx, None), mesh)
        for name, kw in spec.get("jax_variants", {}).items()
    }

    # --- PyTorch, same weights, same mask, same optimizer
    def make_torch(prune_it: bool):
        module, pairs = TORCH_MODELS[spec["name"]](spec)
        module = module.to(tdev).train()
        copy_from_jax(pairs, params, model_state, tdev)
        if prune_it:
            prune_like_authors(pairs, mask, tdev)
        opt = torch.optim.SGD(module.parameters(), lr=config.learning_rate, momentum=config.momentum,
                              weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
        return module, pairs, opt, sched

    xt = torch.as_tensor(np.ascontiguousarray(batch["x"].transpose(0, 3, 1, 2)), device=tdev)
    yt = torch.as_tensor(batch["y"].astype(np.int64), device=tdev)
    sync = torch.cuda.synchronize if tdev.type == "cuda" else (lambda: None)

    def torch_step_fn(module, opt, sched):
        def step():
            opt.zero_grad(set_to_none=True)
            logits = module(xt)
            loss = F.cross_entropy(logits, yt)
            loss.backward()
            opt.step()
            sched.step()
            acc = (logits.detach().argmax(-1) == yt).float().mean()
            sync()
            return loss.detach(), acc

        return step

    tmodule, tpairs, topt, tsched = make_torch(True)
    torch_step = torch_step_fn(tmodule, topt, tsched)

    # --- correctness: one step from the same state (the first ballot_jax call compiles)
    t0 = time.perf_counter()
    new_state, stats = jax.block_until_ready(jax_step(state, jbatch))
    compile_s = time.perf_counter() - t0
    t_loss, _ = torch_step()
    j_params = jax.device_get(new_state.params)
    t_params = torch_effective_params(tpairs, j_params)
    diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), j_params, t_params)
    max_diff = max(jax.tree.leaves(diffs))
    loss_diff = abs(float(stats["loss"]) - float(t_loss))
    check = {"max_abs_param_diff": max_diff, "loss_jax": float(stats["loss"]), "loss_torch": float(t_loss),
             "abs_loss_diff": loss_diff, "atol": ATOL[device], "jax_first_call_s": compile_s,
             "passed": bool(max_diff <= ATOL[device] and loss_diff <= 10 * ATOL[device]), "variants": {}}
    for name, alt_step in alt_steps.items():  # the same step computed another way: same update, up to rounding
        t0 = time.perf_counter()
        alt_params = jax.device_get(jax.block_until_ready(alt_step(state, jbatch))[0].params)
        alt_compile_s = time.perf_counter() - t0
        d = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), j_params, alt_params)))
        check["variants"][name] = {"max_abs_param_diff_vs_ballot_jax": d, "passed": bool(d <= ATOL[device]),
                                   "first_call_s": alt_compile_s}

    variants = {"torch": torch_step, "ballot_jax": lambda: jax_step(state, jbatch)}
    variants.update({name: (lambda f=f: f(state, jbatch)) for name, f in alt_steps.items()})
    if extra:
        nm_module, _, nm_opt, nm_sched = make_torch(False)
        variants["torch_nomask"] = torch_step_fn(nm_module, nm_opt, nm_sched)
        plain_step = common.plain_jax_step(model, fixed_mask(tx, None))

        variants["jax_plain"] = lambda: plain_step(state, jbatch)
    return {
        "variants": variants,
        "check": check,
        "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
        "sparsity": common.mask_sparsity(mask),
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=15)
    parser.add_argument("--threads", type=int, default=None,
                        help="restrict both frameworks to N cores (default: all this process may use)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: GPU when both torch (CUDA) and JAX see one, else CPU")
    parser.add_argument("--models", default="small_cnn,resnet18", help="comma-separated subset of small_cnn,resnet18")
    parser.add_argument("--extra", action="store_true", help="also time torch without prune hooks and a plain jax.jit step")
    args = parser.parse_args(argv)
    common.check_args(args)
    wanted = [m for m in args.models.split(",") if m]
    unknown = set(wanted) - set(TORCH_MODELS)
    if unknown:
        raise SystemExit(f"--models: unknown {sorted(unknown)}; valid: {sorted(TORCH_MODELS)}")
    threads = common.thread_settings(args.threads)

    try:
        import torch
    except (ImportError, OSError) as e:  # OSError: a broken install (missing shared libraries)
        print(SKIP_MESSAGE, f"({type(e).__name__}: {e})" if not isinstance(e, ModuleNotFoundError) else "")
        if args.json:
            common.write_json(args.json, {"benchmark": BENCHMARK, "skipped": SKIP_MESSAGE,
                                          "settings": {k: v for k, v in vars(args).items() if k != "json"}})
        return 0

    import jax

    n_threads = len(threads["cpu_affinity"]) if threads["cpu_affinity"] else os.cpu_count()
    torch.set_num_threads(n_threads)
    jax_gpu = any(d.platform == "gpu" for d in jax.devices()) if jax.default_backend() != "cpu" else False
    torch_gpu = torch.cuda.is_available()
    if args.device == "gpu" and not (jax_gpu and torch_gpu):
        print(f"vs_torch: --device gpu needs a GPU in both frameworks (jax: {jax_gpu}, torch cuda: {torch_gpu})",
              file=sys.stderr)
        return 2
    device = "gpu" if (args.device == "gpu" or (args.device == "auto" and jax_gpu and torch_gpu)) else "cpu"
    if device == "gpu":
        torch.backends.cudnn.benchmark = True  # XLA autotunes its convolutions too
    setup = {
        "device": device,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "xla_cpu_threads": n_threads,  # XLA:CPU's intra-op pool = schedulable CPUs (the affinity)
        "cpu_affinity": threads["cpu_affinity"],
        "torch_cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "torch_cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "torch_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(f"vs_torch: device {device}; threads: torch {setup['torch_num_threads']}, XLA:CPU {n_threads} "
          f"(affinity {threads['cpu_affinity']})", file=sys.stderr, flush=True)

    min_sample_s = 0.002 if args.quick else 0.1
    measurements, detail_rows, rows, ratios, passed = {}, [], [], {}, True
    for spec in [s for s in model_specs(args.quick) if s["label"] in wanted]:
        label = spec["label"]
        print(f"[{label}] building, checking one step, compiling ...", file=sys.stderr, flush=True)
        b = build(spec, device, args.extra)
        c = b["check"]
        passed &= c["passed"] and all(v["passed"] for v in c["variants"].values())
        print(f"[{label}] one step: max|dparam| {c['max_abs_param_diff']:.2e}, loss jax {c['loss_jax']:.6f} "
              f"torch {c['loss_torch']:.6f} -> {'PASS' if c['passed'] else 'FAIL'}", file=sys.stderr, flush=True)
        res = common.compare(b["variants"], repeats=args.repeats, warmup=args.warmup, min_sample_s=min_sample_s)
        base = res["torch"]["samples_s"]
        m = measurements[label] = {
            "model": spec["name"], "model_kwargs": spec["kwargs"], "input_shape": list(spec["shape"]),
            "batch_size": spec["batch"], "num_params": b["num_params"], "sparsity": b["sparsity"],
            "check": c, "variants": {name: common.measured(r, base) for name, r in res.items()},
        }
        m["variants"]["ballot_jax"]["first_call_s"] = c["jax_first_call_s"]  # compiled in the check
        for name, v in c["variants"].items():
            m["variants"][name]["first_call_s"] = v["first_call_s"]
        for name, v in m["variants"].items():
            detail_rows.append([label, name, common.ms(v["median_s"]), common.ms(v["iqr_s"]),
                                f"{v['ratio']:.3f}", f"{v['first_call_s']:.2f}"])
        tv = m["variants"]["torch"]
        one_step = {"ballot_jax": (c["max_abs_param_diff"], c["passed"]),  # (max |dparam|, passed) of each jax step
                    **{n: (v["max_abs_param_diff_vs_ballot_jax"], v["passed"]) for n, v in c["variants"].items()}}
        for name, (diff, ok) in one_step.items():
            jv, row_label = m["variants"][name], label + name.removeprefix("ballot_jax").replace("_", "+", 1)
            ratios[row_label] = jv["ratio"]
            rows.append([row_label, device, n_threads, common.ms(tv["median_s"]), common.ms(jv["median_s"]),
                         f"{jv['ratio']:.3f}", f"[{jv['ratio_q25']:.2f}, {jv['ratio_q75']:.2f}]",
                         f"{diff:.1e} " + ("PASS" if ok else "FAIL")])
        m["ballot_jax_over_torch"] = m["variants"]["ballot_jax"]["ratio"]

    notes = [
        "vs_torch: the same masked train step (90% sparsity, SGD momentum 0.9 + weight decay, cosine lr) in",
        "PyTorch eager (prune.custom_from_mask) and ballot_jax (engine step + optim.fixed_mask), same weights and",
        f"batch, interleaved; ms per step. torch {setup['torch']}, threads: torch {setup['torch_num_threads']}, "
        f"XLA:CPU {n_threads}." + (" (--quick: sizes too small to mean anything)" if args.quick else ""),
        "",
        common.format_table(["model", "variant", "median ms", "IQR ms", "vs torch", "1st call s"], detail_rows),
        "",
        "ratio = ballot_jax / torch, median of paired per-repetition ratios [IQR]; < 1: ballot_jax is faster.",
        "resnet18+winograd: the model with conv_impl=\"winograd\" (ballot_jax.models.winograd), timed in the same",
        "interleaved run; its 1-step check is against the default ballot_jax step (same update up to rounding).",
        "overall: " + ("PASS" if passed else "FAIL") + " (one step from the same state agrees in both frameworks)",
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device == "cpu" and n_threads > 1 and load > (os.cpu_count() or 1) and not os.environ.get("OMP_WAIT_POLICY"):
        notes.append(f"WARNING: busy machine (load {load:.1f} on {os.cpu_count()} cores): PyTorch's OpenMP threads "
                     "spin-wait and slow down far more than XLA's; compare with --threads 1 or OMP_WAIT_POLICY=PASSIVE.")
    common.finish(
        args, BENCHMARK,
        ["model", "device", "threads", "torch ms", "ballot_jax ms", "jax/torch", "ratio IQR", "1-step check"],
        rows,
        {"setup": setup, "passed": passed, "measurements": measurements,
         "ballot_jax_over_torch": ratios},
        notes,
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
