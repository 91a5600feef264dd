"""Session 29: does a candidate's accuracy on the *training* split say what the disparity term costs on held-out data?

The untried design of docs/method.md §5.7 (session 28) adapts the term's multiplier during refined training against
an accuracy constraint; inside training the only signal that is not the 800-face validation split is the training
data itself. This reads, on the development targets (nothing is trained), every run of session 28's workdirs
/work/runs/s28_<target>_polish (seeds 0-9, 80% and 95%, T2): the μ = 0 ticket of each mode and, in the mode the run
chose, the μ = 0.3 / 1 / 3 candidates (C15's: the μ = 0 ticket fine-tuned one phase with the adversary), each
evaluated on the training split (7,200 faces; `Trainer.evaluate`), beside the validation and test accuracy its
record.json holds. Prints, per target and sparsity, the train / validation / test accuracy of the μ = 0 tickets
and, per μ, the mean drop from the μ = 0 ticket on each split with how well the training and the validation drop
predict the test drop (Pearson r over the runs, mean absolute error in points). Writes the per-run figures to
docs/results/records/session29_train_split_cost.json (or reads them from there with --cached). Other workdirs (e.g.
the default's own retrained candidates, A.2zl): ``--set LABEL=GLOB`` (every workdir GLOB matches, each holding
seed_*/sparsity_*/ballot/<mode>/mu_*) and ``--out FILE``.
    PYTHONPATH=. python docs/results/scripts/session29_train_split_cost.py [--cached] [--set LABEL=GLOB ...] [--out FILE]
"""
import argparse
import glob
import json
import pathlib
import sys

import numpy as np

OUT = pathlib.Path("docs/results/records/session29_train_split_cost.json")
SPARSITIES, MUS = ("0.8", "0.95"), ("0.3", "1", "3")
DEFAULT_SETS = [f"{t}=/work/runs/s28_{t}_polish" for t in ("blond", "wavy")]


def collect(sets: list[list[str]]) -> list[dict]:
    from ml_collections import config_dict

    from ballot_jax.engine.loop import Trainer, init_state
    from ballot_jax.engine.phases import finished_phase
    from experiments.config import train_config
    from experiments.run import build_task

    rows = []
    for target, pattern in sets:
        roots = sorted(pathlib.Path(p) for p in glob.glob(pattern))
        cfg = json.loads((roots[0] / "config.json").read_text())
        cfg.pop("_sha256", None)
        config = config_dict.ConfigDict(cfg)
        task = build_task(config)
        trainer = Trainer(task)
        for sparsity in SPARSITIES:
            for base in sorted(b for root in roots for b in root.glob(f"seed_*/sparsity_{sparsity}/ballot")):
                seed = int(base.parent.parent.name.removeprefix("seed_"))
                like = init_state(task, train_config(config, seed))
                for mode in sorted(p.name for p in base.iterdir()):
                    chosen = (base / mode / "mu_0.3").exists()
                    for cand in ("0", *MUS) if chosen else ("0",):
                        d = base / mode / f"mu_{cand}"
                        last = sorted(p for p in d.iterdir() if (p / "record.json").exists())[-1]
                        state, record = finished_phase(last, like)
                        rows.append({"target": target, "sparsity": sparsity, "seed": seed, "mode": mode,
                                     "chosen_mode": chosen, "mu": cand,
                                     "train": trainer.evaluate(state, task.data.train)["accuracy"],
                                     "val": record["val"]["accuracy"], "test": record["test"]["accuracy"]})
                        print(target, sparsity, seed, mode, cand, file=sys.stderr, flush=True)
    return rows


def summarize(rows: list[dict]) -> None:
    targets = list(dict.fromkeys(r["target"] for r in rows))
    print("| target | sparsity | μ = 0 ticket (mode) | runs | train | val | test | train − test (pp) |")
    print("|---|---|---|---|---|---|---|---|")
    for target in targets:
        for sp in SPARSITIES:
            for mode in ("one_shot_finetune", "iterative_rewind"):
                sel = [r for r in rows if (r["target"], r["sparsity"], r["mode"], r["mu"]) == (target, sp, mode, "0")]
                if not sel:
                    continue
                m = {k: np.mean([r[k] for r in sel]) for k in ("train", "val", "test")}
                print(f"| {target} | {sp} | {mode} | {len(sel)} | {m['train']:.4f} | {m['val']:.4f} | {m['test']:.4f} | "
                      f"{100 * (m['train'] - m['test']):+.2f} |")
    print()
    print("| target | sparsity | μ | runs | drop train (pp) | drop val | drop test | r(train, test) | r(val, test) | "
          "MAE train→test | MAE val→test |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for target in targets:
        for sp in SPARSITIES:
            zero = {(r["seed"]): r for r in rows
                    if (r["target"], r["sparsity"], r["mu"], r["chosen_mode"]) == (target, sp, "0", True)}
            for mu in MUS:
                sel = [r for r in rows if (r["target"], r["sparsity"], r["mu"]) == (target, sp, mu)]
                drop = {k: np.array([100 * (zero[r["seed"]][k] - r[k]) for r in sel]) for k in ("train", "val", "test")}
                r_train = np.corrcoef(drop["train"], drop["test"])[0, 1]
                r_val = np.corrcoef(drop["val"], drop["test"])[0, 1]
                mae_train = np.mean(np.abs(drop["train"] - drop["test"]))
                mae_val = np.mean(np.abs(drop["val"] - drop["test"]))
                print(f"| {target} | {sp} | {mu} | {len(sel)} | {drop['train'].mean():+.2f} | {drop['val'].mean():+.2f} | "
                      f"{drop['test'].mean():+.2f} | {r_train:+.2f} | {r_val:+.2f} | {mae_train:.2f} | {mae_val:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cached", action="store_true")
    parser.add_argument("--set", action="append", default=None, help="LABEL=GLOB of workdirs")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    if args.cached:
        rows = json.loads(args.out.read_text())["rows"]
    else:
        rows = collect([spec.split("=", 1) for spec in args.set or DEFAULT_SETS])
        args.out.write_text(json.dumps({"source": "session29_train_split_cost.py", "rows": rows}, indent=0) + "\n")
    summarize(rows)


if __name__ == "__main__":
    main()
