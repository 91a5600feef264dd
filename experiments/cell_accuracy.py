"""Per-(group, class) accuracy of a finished run's model: where each group's errors come from.

    python -m experiments.cell_accuracy --workdir runs/celeba_wc --method lth --seed 0 --sparsity 0.95
    python -m experiments.cell_accuracy --workdir runs/celeba_wc --method dense --seed 0 --split val

Reads ``<workdir>/config.json``, loads the data and builds the model as the run did, restores the
final weights of the method's last level (``dense``, ``magnitude``, ``lth``, ``ballot``: the methods
that train on the engine's levels loop), predicts the split and prints, for every group, the
number of examples and the accuracy of each true class, and the rate at which each class is
predicted. It trains nothing and writes nothing.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from ml_collections import config_dict

from ballot_jax.engine import checkpoints
from experiments import run


def final_checkpoint(workdir: pathlib.Path, method: str, seed: int, sparsity: float | None) -> pathlib.Path:
    """The ``final`` checkpoint of the method's last level (the dense run's for ``dense``)."""
    if method != "dense" and sparsity is None:
        raise SystemExit(f"--sparsity is needed for method {method!r}")
    directory = run.method_dir(workdir, seed, sparsity or 0.0, method)
    if method == "dense":
        final = directory / "final"
    else:
        record = run.record_path(directory)
        chosen = checkpoints.read_json(record) if record.exists() else {}
        if "run_dir" in chosen:  # a method with a search (Ballot): its chosen candidate's levels
            directory = directory / chosen["run_dir"]
        elif "search" in chosen:  # records written before run_dir existed
            directory = directory / f"mu_{chosen['disparity_weight']:g}"
        levels = sorted(directory.glob("level_*"))
        final = levels[-1] / "final" if levels else directory / "level_*" / "final"
    if not final.exists():
        raise SystemExit(f"no finished model at {final} (is the run finished, and does {method!r} "
                         "train on the levels loop?)")
    return final


def cell_table(conf: np.ndarray, group_names, class_names) -> list[list[str]]:
    """Rows ``group, true class, examples, accuracy, predicted rate`` from confusion counts
    ``conf[g, true, pred]``; the predicted rate of class c is the share of the group predicted c."""
    rows = []
    for g, group in enumerate(group_names):
        total = conf[g].sum()
        for c, name in enumerate(class_names):
            n = conf[g, c].sum()
            acc = f"{conf[g, c, c] / n:.3f}" if n else "-"
            rate = f"{conf[g, :, c].sum() / total:.3f}" if total else "-"
            rows.append([group, name, str(n), acc, rate])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--method", required=True, help="dense, magnitude, lth or ballot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sparsity", type=float, default=None, help="target sparsity (not for dense)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = parser.parse_args(argv)

    from ballot_jax import metrics
    from ballot_jax.engine.loop import init_state
    from ballot_jax.engine.steps import make_predict, predict_split

    config_path = args.workdir / "config.json"
    if not config_path.exists():
        raise SystemExit(f"{config_path} not found: --workdir must be an experiment's work directory")
    final = final_checkpoint(args.workdir, args.method, args.seed, args.sparsity)
    config = config_dict.ConfigDict(checkpoints.read_json(config_path))
    task = run.build_task(config)
    state = checkpoints.load_item(final, init_state(task, run.train_config(config, args.seed)))
    split = getattr(task.data, args.split)
    y_pred = predict_split(make_predict(task.model), state.params, state.model_state, split.x, task.mesh)
    info = task.data.info
    conf = np.asarray(metrics.group_confusion(split.y, y_pred, split.group, info.num_groups, info.num_classes))
    print(f"{args.method}, seed {args.seed}, {args.split} split, model {final}\n")
    print("| group | true class | examples | accuracy | predicted rate |\n|---|---|---|---|---|")
    for row in cell_table(conf, info.group_names, info.class_names):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
