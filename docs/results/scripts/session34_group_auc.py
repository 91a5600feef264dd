"""Session 34: is the CelebA groups' accuracy gap the labels' base rate, or unequal skill? (nothing trained)

Results A.3c found Standard LTH's ticket no better than the constant prediction on the group whose label is nearly
constant (Big_Nose's women: 87.8% one class). That can mean two things: the ticket cannot tell that group's faces
apart (unequal skill), or it ranks them as well as the other group's and a base rate of 12% leaves a threshold at
0.5 nothing to gain (the base rate). The area under the ROC curve per group separates the two, since it does not
depend on the base rate or the threshold. Per seed and model (the dense network, LTH's ticket, and C16's chosen
candidate) of a Big_Nose development workdir: each group's test accuracy, its majority-class rate and its AUC
(the probability that a random positive face scores above a random negative one, ties half:
``sklearn.metrics.roc_auc_score``), then the mean over seeds
and the paired women − men AUC difference, then C16 − LTH per group (95% percentile bootstrap CIs over seeds).

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session34_group_auc.py [WORKDIR]

WORKDIR: /work/runs/s29_dev_Big_Nose_a by default (`SEEDS=0,1,2,3,4 WORKDIR_SUFFIX=_a bash
docs/results/scripts/session29_dev_target.sh run Big_Nose`; Wavy_Hair's the same with Wavy_Hair); every (seed,
sparsity) whose LTH and Ballot runs have finished is read.
"""
import json
import pathlib
import sys

import numpy as np
from ml_collections import config_dict
from sklearn.metrics import roc_auc_score

from ballot_jax import stats
from ballot_jax.engine.loop import init_state
from ballot_jax.engine.phases import finished_phase
from ballot_jax.engine.steps import make_logits, predict_split
from experiments.config import train_config
from experiments.run import build_task
from session32_logits import last_phase


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/work/runs/s29_dev_Big_Nose_a")
    if not (root / "config.json").exists():
        raise SystemExit(f"{root} is not an experiment workdir (no config.json): make it with session29_dev_target.sh run "
                         "TARGET as the docstring says")
    cfg = json.loads((root / "config.json").read_text())
    cfg.pop("_sha256", None)
    config = config_dict.ConfigDict(cfg)
    task = build_task(config)
    logits_fn = make_logits(task.model)
    test = task.data.test
    y, group = np.asarray(test.y), np.asarray(test.group)
    rows = {}  # (model, sparsity) -> list of (seed, [acc_w, majority_w, auc_w, acc_m, majority_m, auc_m])
    for seed_dir in sorted(root.glob("seed_*")):
        finished = [b for b in sorted(seed_dir.glob("sparsity_*"))
                    if (b / "lth.record.json").exists() and (b / "ballot.record.json").exists()]
        if not finished:
            continue
        seed = int(seed_dir.name.removeprefix("seed_"))
        like = init_state(task, train_config(config, seed))
        models = [("dense", "-", seed_dir / "dense")]  # one dense network per seed
        for base in finished:
            sparsity = base.name.removeprefix("sparsity_")
            chosen = json.loads((base / "ballot.record.json").read_text())["run_dir"]  # the candidate C16 chose
            models += [("lth", sparsity, last_phase(base / "lth")), ("c16", sparsity, last_phase(base / "ballot" / chosen))]
        for name, sparsity, phase in models:
            state, _ = finished_phase(phase, like)
            logits = np.asarray(predict_split(logits_fn, state.params, state.model_state, test.x, task.mesh))
            score = logits[:, 1] - logits[:, 0]
            row = []
            for g in (0, 1):
                m = group == g
                base_rate = y[m].mean()
                row += [float(((score[m] > 0) == (y[m] == 1)).mean()), max(base_rate, 1 - base_rate),
                        float(roc_auc_score(y[m], score[m]))]
            rows.setdefault((name, sparsity), []).append((seed, row))
    print("| model | sparsity | seeds | women: acc / majority / AUC | men: acc / majority / AUC | AUC women − men [95% CI] |")
    print("|---|---|---|---|---|---|")
    for (name, sparsity), per_seed in rows.items():
        values = np.array([r for _, r in per_seed])
        w, m = values[:, :3].mean(0), values[:, 3:].mean(0)
        c = stats.paired_comparison({s: r[2] for s, r in per_seed}, {s: r[5] for s, r in per_seed})
        print(f"| {name} | {sparsity} | {len(per_seed)} | {100 * w[0]:.1f} / {100 * w[1]:.1f} / {w[2]:.3f} | "
              f"{100 * m[0]:.1f} / {100 * m[1]:.1f} / {m[2]:.3f} | {c.mean_difference:+.3f} {c.ci_text('+.3f')} |")
    for sparsity in sorted({s for n, s in rows if n == "c16"}):  # C16 − LTH per group, paired over seeds
        ours, theirs = dict(rows[("c16", sparsity)]), dict(rows[("lth", sparsity)])
        parts = []
        for label, i in (("women", 2), ("men", 5)):
            c = stats.paired_comparison({s: r[i] for s, r in ours.items()}, {s: r[i] for s, r in theirs.items()},
                                        higher_is_better=True)
            parts.append(f"{label} {c.mean_difference:+.3f} {c.ci_text('+.3f')} ({c.verdict()})")
        print(f"C16 − LTH, AUC at {sparsity}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
