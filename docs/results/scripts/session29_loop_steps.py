"""Session 29: the loop benchmark's MLP ratio against the number of steps a timed sample runs.

`python -m benchmarks.loop` times `Trainer.train` over K = 20 steps a sample and divides by 20, so whatever one call of
`Trainer.train` costs once (placing the state, the phase's setup, the final state's view) is spread over 20 steps
only; a run's phase is 300+ steps. This times the MLP of that benchmark (the same `benchmarks.loop.build`, one
device, training set of 10,000) at several K, `loop`, `bare` and `bare_gather` interleaved at each K, and prints the
paired per-step ratios.
    PYTHONPATH=. python docs/results/scripts/session29_loop_steps.py [--repeats N] [K ...]
"""
import argparse

from benchmarks import common
from benchmarks.loop import build, model_specs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("steps", type=int, nargs="*", default=[1, 20, 100, 300])
    args = parser.parse_args()
    spec = next(s for s in model_specs(quick=False) if s["label"] == "mlp")
    print("| K (steps a sample) | bare ms/step | loop ms/step | loop / bare | loop / bare_gather | "
          "loop − bare, ms per call |")
    print("|---|---|---|---|---|---|")
    for k in args.steps:
        variants = build(spec, k, 10_000)["variants"]
        res = common.compare({n: variants[n] for n in ("bare", "bare_gather", "loop")}, repeats=args.repeats, number=1)
        per_step = {n: [s / k for s in r["samples_s"]] for n, r in res.items()}
        bare = common.measured({**res["bare"], "samples_s": per_step["bare"]}, per_step["bare"])
        loop = common.measured({**res["loop"], "samples_s": per_step["loop"]}, per_step["bare"])
        over_gather = common.measured({**res["loop"], "samples_s": per_step["loop"]}, per_step["bare_gather"])
        extra = (loop["median_s"] - bare["median_s"]) * k
        print(f"| {k} | {1e3 * bare['median_s']:.3f} | {1e3 * loop['median_s']:.3f} | {loop['ratio']:.3f} | "
              f"{over_gather['ratio']:.3f} | {1e3 * extra:.2f} |", flush=True)


if __name__ == "__main__":
    main()
