"""Session 29: the loop benchmark's MLP, per-call and per-step costs apart.

Times one call of `Trainer.train` over K steps (`loop`) and K calls of the bare jitted step with the batch gathered on
the device (`bare_gather`) and on one fixed batch (`bare`), for K in 1..64, the variants interleaved (the same
`benchmarks.loop.build`: the MLP, one device, batch 64, one training set of 10,000 shared by every K), and fits time = a + b·K by least
squares on the medians: b is the cost of a step, a what a call costs once.
    PYTHONPATH=. python docs/results/scripts/session29_loop_fit.py [--repeats N]
"""
import argparse
import time

import functools

import jax
import numpy as np

from benchmarks import loop as loop_benchmark
from benchmarks.loop import build, model_specs

KS = (1, 2, 4, 8, 16, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args()
    spec = next(s for s in model_specs(quick=False) if s["label"] == "mlp")
    names = ("bare", "bare_gather", "loop")
    # one training set for every K: the engine keeps the two most recent sets on the device, and seven would make
    # every loop call place its set again
    loop_benchmark.synthetic_dataset = functools.lru_cache(maxsize=1)(loop_benchmark.synthetic_dataset)
    built = {k: build(spec, k, 10_000)["variants"] for k in KS}
    for k in KS:  # compile and warm every variant
        for n in names:
            jax.block_until_ready(built[k][n]())
    times = {(n, k): [] for n in names for k in KS}
    for _ in range(args.repeats):
        for k in KS:
            for n in names:
                t0 = time.perf_counter()
                jax.block_until_ready(built[k][n]())
                times[(n, k)].append(time.perf_counter() - t0)
    print("| variant | " + " | ".join(f"K={k} ms" for k in KS) + " | per call a (ms) | per step b (ms) |")
    print("|---|" + "---|" * (len(KS) + 2))
    for n in names:
        med = np.array([1e3 * np.median(times[(n, k)]) for k in KS])
        b, a = np.polyfit(np.array(KS, float), med, 1)
        print(f"| {n} | " + " | ".join(f"{m:.2f}" for m in med) + f" | {a:.2f} | {b:.3f} |")


if __name__ == "__main__":
    main()
