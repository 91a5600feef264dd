"""Session 12's diagnosis: are interpolations of a run's μ = 0 and μ > 0 candidates fairer per point of
accuracy than the μ grid itself? (Development sets only; reads the test split; chooses nothing.)

    PYTHONPATH=. python docs/results/scripts/session12_interpolation.py [SET ...]   # default: blond wavy cifar10

For every finished default Ballot run in /work/runs/s11_<SET> (mode as the run chose), the weights
θ_α = (1 − α) θ_0 + α θ_μ of the μ = 0 and each μ > 0 candidate (one ticket: the same mask, the same
starting weights) are evaluated at α = 0.25, 0.5, 0.75 on validation and test. Prints, per set and
sparsity, the mean over seeds of the test accuracy difference from LTH (points) and the test CWV of
every grid point and interpolation, so the two trade-off curves can be compared."""
import pathlib
import sys

import jax
import numpy as np
from ml_collections import config_dict

from ballot_jax import metrics
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import init_state
from ballot_jax.engine.steps import make_predict, predict_split
from experiments import compare, mu_frontier, run

ALPHAS = (0.25, 0.5, 0.75)


def evaluate(task, predict, params, model_state, split) -> tuple[float, float]:
    y_pred = predict_split(predict, params, model_state, split.x, task.mesh)
    info = task.data.info
    conf = metrics.group_confusion(split.y, y_pred, split.group, info.num_groups, info.num_classes)
    m = metrics.metrics_from_confusion(conf)
    return float(m["accuracy"]), float(m["cwv"])


def final_state(task, config, seed, directory: pathlib.Path):
    final = sorted(directory.glob("level_*"))[-1] / "final"
    return checkpoints.load_item(final, init_state(task, run.train_config(config, seed)))


for name in sys.argv[1:] or ["blond", "wavy", "cifar10"]:
    base = pathlib.Path(f"/work/runs/s11_{name}")
    config = config_dict.ConfigDict(checkpoints.read_json(base / "config.json"))
    task = run.build_task(config)
    predict = make_predict(task.model)
    lth = {(r["seed"], float(r["target_sparsity"])): r["test"]["accuracy"] for r in compare.load_records(base, "lth")}
    table: dict[tuple[float, str], list[tuple[float, float]]] = {}
    for record in sorted(compare.load_records(base, "ballot"), key=lambda r: (r["target_sparsity"], r["seed"])):
        seed, sparsity = record["seed"], float(record["target_sparsity"])
        dirs = {mu: p for (m, mu), p in mu_frontier.candidate_dirs(base, record, "ballot").items() if m == record.get("mode", "")}
        states = {mu: final_state(task, config, seed, p) for mu, p in dirs.items()}
        zero = states["0"]
        for mu, state in states.items():
            points = [(f"μ={mu}", state.params)]
            if mu != "0":
                points += [(f"{a:g}·μ={mu}", jax.tree.map(lambda p0, p1, a=a: (1 - a) * p0 + a * p1, zero.params, state.params))
                           for a in ALPHAS]
            for label, params in points:
                acc, cwv = evaluate(task, predict, params, zero.model_state, task.data.test)
                table.setdefault((sparsity, label), []).append((100 * (acc - lth[(seed, sparsity)]), cwv))
    print(f"\n{name}: mean over seeds of (test accuracy − LTH's, points; test CWV)")
    for (sparsity, label), values in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1].split("=")[-1], kv[0][1])):
        v = np.array(values)
        print(f"  {sparsity:g} {label:>12}: Δacc {v[:, 0].mean():+6.2f}  CWV {v[:, 1].mean():.5f}  (n={len(v)})")
