"""Session 32: the validation and test logits of every development model whose workdir is on this machine, cached for
evaluation-only readings (nothing trained).

Reads the development workdirs that set_command.sh makes (Big_Nose seeds 0-9: /work/runs/s29_dev_Big_Nose_{a,b};
CIFAR-10 seeds 0-4: /work/runs/s29_dev_cifar10_{80,95}; every method's checkpoints kept) and writes, per set, one
``.npz`` with the labels and groups of both splits and, per (seed, sparsity), the logits of LTH's and Magnitude
Pruning's final models and of every Ballot candidate (each μ of the mode the run chose), keyed
``<split>/<seed>/<sparsity>/<model>`` (model: lth, magnitude, mu_0, mu_0.3, mu_1, mu_3), plus each run's record
(search, ε', mode) as JSON.

    PYTHONPATH=. python3 docs/results/scripts/session32_logits.py [--out /work/runs/s32_logits]
"""
import argparse
import json
import pathlib

import numpy as np
from ml_collections import config_dict

from ballot_jax.engine.loop import init_state
from ballot_jax.engine.phases import finished_phase
from ballot_jax.engine.steps import make_logits, predict_split
from experiments.config import train_config
from experiments.run import build_task

SETS = {"big_nose": ["/work/runs/s29_dev_Big_Nose_a", "/work/runs/s29_dev_Big_Nose_b"],
        "cifar10": ["/work/runs/s29_dev_cifar10_80", "/work/runs/s29_dev_cifar10_95"]}


def last_phase(directory: pathlib.Path) -> pathlib.Path:
    return sorted(p for p in directory.iterdir() if (p / "record.json").exists())[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/work/runs/s32_logits")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, workdirs in SETS.items():
        roots = [pathlib.Path(p) for p in workdirs]
        cfg = json.loads((roots[0] / "config.json").read_text())
        cfg.pop("_sha256", None)
        config = config_dict.ConfigDict(cfg)
        task = build_task(config)
        logits = make_logits(task.model)
        arrays = {f"{split}/{key}": np.asarray(getattr(getattr(task.data, split), key))
                  for split in ("val", "test") for key in ("y", "group")}
        records = {}
        for base in sorted(b for root in roots for b in root.glob("seed_*/sparsity_*")):
            seed, sparsity = base.parent.name.removeprefix("seed_"), base.name.removeprefix("sparsity_")
            sparsity = f"{float(sparsity):g}"
            like = init_state(task, train_config(config, int(seed)))
            record = json.loads((base / "ballot.record.json").read_text())
            records[f"{seed}/{sparsity}"] = {k: record[k] for k in ("search", "epsilon_effective", "mode", "run_dir")}
            mode = base / "ballot" / record["mode"]
            models = {"lth": last_phase(base / "lth"), "magnitude": last_phase(base / "magnitude")}
            models.update({m.name: last_phase(m) for m in sorted(mode.glob("mu_*"))})
            for model, phase in models.items():
                state, _ = finished_phase(phase, like)
                for split in ("val", "test"):
                    arrays[f"{split}/{seed}/{sparsity}/{model}"] = predict_split(
                        logits, state.params, state.model_state, getattr(task.data, split).x, task.mesh)
            print(name, seed, sparsity, sorted(models), flush=True)
        np.savez_compressed(out / f"{name}.npz", **arrays)
        (out / f"{name}.records.json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
