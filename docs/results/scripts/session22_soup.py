"""C14 of docs/results/scripts/session22_preregistration.md, evaluation only: per run of C12's workdir
/work/runs/s15_<SET>__c12, the uniform soup (parameter mean) of the μ candidates C12's rule admits in the
chosen one-shot mode, kept when its validation accuracy passes the same ε' check, else C12's candidate.
Writes docs/results/records/session22_soup_<SET>.json with labels c12 (the records as kept) and c14.

    PYTHONPATH=/work/main python docs/results/scripts/session22_soup.py SET [SET ...]
"""
import json
import pathlib
import sys

import jax
import numpy as np
from ml_collections import config_dict

from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Trainer, init_state
from ballot_jax.methods.ballot import choose_within_epsilon
from experiments import run

OUT = pathlib.Path(__file__).resolve().parents[1] / "records"
ONE_SHOT = "one_shot_finetune"


def last_level(directory: pathlib.Path) -> pathlib.Path:
    levels = sorted(directory.glob("level_*"))
    if not levels:
        raise SystemExit(f"no level under {directory}")
    return levels[-1]


def soup_records(name: str) -> list[dict]:
    workdir = pathlib.Path(f"/work/runs/s15_{name}__c12")
    config = config_dict.ConfigDict(checkpoints.read_json(workdir / "config.json"))
    task = run.build_task(config)
    trainer = Trainer(task)
    out = []
    for rec in json.loads((workdir / "results.json").read_text())["records"]:
        if rec["method"] != "ballot":
            continue
        seed, sparsity = rec["seed"], rec["target_sparsity"]
        kept = {k: v for k, v in rec.items() if k != "levels"}
        out.append({**kept, "method": "c12"})
        c14 = {**kept, "method": "c14", "soup": None}
        search, eps = rec["search"], rec["epsilon_effective"]
        reference = next(iter(search.values()))["accuracy"]  # the μ = 0 candidate's (epsilon_reference ticket)
        chosen = choose_within_epsilon(search, reference, eps, "strongest")
        assert float(chosen) == float(rec["disparity_weight"]), (name, seed, sparsity, chosen, rec["disparity_weight"])
        admissible = [k for k in search if search[k]["accuracy"] >= reference - eps]
        mdir = run.method_dir(workdir, seed, sparsity, "ballot")
        why = None
        if rec["mode"] != ONE_SHOT:
            why = "rewinding mode"
        elif len(admissible) < 2:
            why = "one admissible candidate"
        if why is None:
            like = init_state(task, run.train_config(config, seed))
            levels = [last_level(mdir / ONE_SHOT / f"mu_{k}") for k in admissible]
            masks = [checkpoints.read_leaves(level / "mask") for level in levels]
            if any(len(m) != len(masks[0]) or any(not np.array_equal(a, b) for a, b in zip(m, masks[0])) for m in masks):
                why = "masks differ"
        if why is None:
            states = [checkpoints.load_item(level / "final", like) for level in levels]
            base = states[admissible.index(chosen)]
            check = trainer.evaluate(base, task.data.test)  # the kept candidate re-evaluated: must equal its record
            assert abs(check["accuracy"] - rec["test"]["accuracy"]) < 1e-6 and abs(check["cwv"] - rec["test"]["cwv"]) < 1e-9, (name, seed, sparsity)
            soup = jax.tree.map(lambda *xs: sum(xs) / len(xs), *[s.params for s in states])
            state = base._replace(params=soup)
            val = trainer.evaluate(state, task.data.val)
            if val["accuracy"] < reference - eps:
                why = f"soup below ε' on validation ({val['accuracy']:.4f} < {reference - eps:.4f})"
            else:
                test = trainer.evaluate(state, task.data.test)
                c14.update(val=jax.device_get(val), test=jax.device_get(test), soup=[float(k) for k in admissible])
        c14["soup_skipped"] = why
        print(f"{name} seed {seed} {sparsity}: admissible {admissible}, chosen {chosen}: "
              + (f"kept C12 ({why})" if why else f"soup test acc {c14['test']['accuracy']:.4f} CWV {c14['test']['cwv']:.5f} "
                 f"(C12 {rec['test']['accuracy']:.4f} / {rec['test']['cwv']:.5f})"), flush=True)
        out.append(c14)
    return out


def plain(x):
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = OUT / f"session22_soup_{name}.json"
        path.write_text(json.dumps({"records": plain(soup_records(name))}, indent=1, sort_keys=True) + "\n")
        print(f"{name}: {path}")
