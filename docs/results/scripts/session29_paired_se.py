"""Session 29: how finely can the validation split measure a μ candidate's accuracy cost, paired?

The ε rule compares a μ > 0 candidate's validation accuracy with the μ = 0 ticket's; its floor (C10, `split_se`) is
the standard error of one accuracy, sqrt(a (1 − a) / n). Both are measured on the same faces, so the noise of their
difference is that of the paired difference, sqrt(Var(1[candidate right] − 1[ticket right]) / n), which is small
when the two agree on most faces. This reads session 28's workdirs /work/runs/s28_<target>_polish (development
targets, seeds 0-9, 80% and 95%; nothing trained): in the mode each run chose, the μ = 0 ticket and the μ = 0.3 / 1 / 3
candidates (C15's polished ones; the default's retrained candidates were not kept) predict the validation split
(800 faces); prints, per target, sparsity and μ, the mean over the runs of the fraction of faces where the two
disagree, the paired standard error of the accuracy difference and the unpaired one (C10's floor), in points.
Other workdirs (e.g. the default's own retrained candidates, A.2zl): ``--set LABEL=GLOB`` (every workdir GLOB matches,
each holding seed_*/sparsity_*/ballot/<mode>/mu_*).
    PYTHONPATH=. python docs/results/scripts/session29_paired_se.py [--set LABEL=GLOB ...]
"""
import argparse
import glob
import json
import pathlib

import numpy as np
from ml_collections import config_dict

from ballot_jax.engine.loop import init_state
from ballot_jax.engine.phases import finished_phase
from ballot_jax.engine.steps import make_predict, predict_split
from experiments.config import train_config
from experiments.run import build_task

MUS = ("0.3", "1", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", action="append", default=None, help="LABEL=GLOB of workdirs")
    args = parser.parse_args()
    sets = [spec.split("=", 1) for spec in args.set or
            [f"{t}=/work/runs/s28_{t}_polish" for t in ("blond", "wavy")]]
    print("| target | sparsity | μ | runs | faces where μ and μ = 0 disagree | paired SE (pp) | unpaired SE, C10's floor (pp) |")
    print("|---|---|---|---|---|---|---|")
    for target, pattern in sets:
        roots = sorted(pathlib.Path(p) for p in glob.glob(pattern))
        cfg = json.loads((roots[0] / "config.json").read_text())
        cfg.pop("_sha256", None)
        config = config_dict.ConfigDict(cfg)
        task = build_task(config)
        predict, val = make_predict(task.model), task.data.val
        y = np.asarray(val.y)
        for sparsity in ("0.8", "0.95"):
            rows = {mu: [] for mu in MUS}
            for base in sorted(b for root in roots for b in root.glob(f"seed_*/sparsity_{sparsity}/ballot")):
                like = init_state(task, train_config(config, int(base.parent.parent.name.removeprefix("seed_"))))
                mode = next(m for m in sorted(base.iterdir()) if (m / "mu_0.3").exists())

                def right(mu):
                    d = mode / f"mu_{mu}"
                    last = sorted(p for p in d.iterdir() if (p / "record.json").exists())[-1]
                    state, _ = finished_phase(last, like)
                    return predict_split(predict, state.params, state.model_state, val.x, task.mesh)

                zero = right("0")
                a0 = np.mean(zero == y)
                for mu in MUS:
                    pred = right(mu)
                    diff = (pred == y).astype(float) - (zero == y).astype(float)
                    rows[mu].append((np.mean(pred != zero), diff.std(ddof=1) / np.sqrt(len(y)),
                                     np.sqrt(a0 * (1 - a0) / len(y))))
            for mu in MUS:
                m = np.mean(rows[mu], axis=0)
                print(f"| {target} | {sparsity} | {mu} | {len(rows[mu])} | {m[0]:.3f} | {100 * m[1]:.2f} | {100 * m[2]:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
