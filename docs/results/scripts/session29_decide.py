"""Session 29's pre-registered decision of C16 (docs/results/scripts/session29_preregistration.md): the strongest μ of
the admissible prefix, a re-choice among the default's (C12's) trained candidates.

For every development record of C12 (Blond_Hair, Wavy_Hair: session25_*.json; Big_Nose: session29_Big_Nose.json;
digits-LT10: session22_dev_digits_lt10.json; CIFAR-10: session29_cifar10.json, re-created on this machine) C16's μ is
computed from the record's validation search and ε'; where it differs from C12's, the run's new candidate's metrics
come from the exported candidates of its workdir (session29_<SET>_candidates*.json; the exported chosen candidate must
reproduce the record: checked; a set whose candidates do not is void, and the verdict then UNDECIDED; session 29's run
of this script voided session 22's CIFAR-10 records that way, results A.2zm). Checked first on every record: the
library's "strongest" rule re-applied to the record's search gives the recorded μ, and its "strongest_prefix" (the
default since session 30) gives C16's. Writes C16's records to
docs/results/records/session29_c16_<SET>.json and prints the rule: (a) development bar cells strictly more than C12's;
none of (b) CWV or MCD significantly higher, (c) accuracy significantly lower, (d) newly more than 1 point below LTH
(``session11_decide.judge`` prints the rows).

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session29_decide.py
"""
import glob
import json
import pathlib

from ballot_jax.methods.ballot import choose_within_epsilon
from experiments import compare, reports
from session11_decide import judge
from session14_decide import met_cells

R = pathlib.Path("docs/results/records")
SETS = {  # name: (C12's record files, the exported candidates of changed runs or None)
    "blond": (sorted(glob.glob(f"{R}/session25_blond*.json")), None),
    "wavy": (sorted(glob.glob(f"{R}/session25_wavy*.json")), None),
    "big_nose": ([f"{R}/session29_Big_Nose.json"], f"{R}/session29_Big_Nose_candidates.json"),
    # re-created on this machine in session 30 (pre-registration addendum): session 22's records do not reproduce here
    "cifar10": ([f"{R}/session29_cifar10.json"], f"{R}/session29_cifar10_candidates_all.json"),
    "digits_lt10": ([f"{R}/session22_dev_digits_lt10.json"], None),
}


def prefix_mu(search: dict, epsilon: float) -> str:
    """C16: walk the grid upwards from μ = 0 and keep the last admissible μ before the first inadmissible one."""
    grid = sorted(search, key=float)
    reference, chosen = search[grid[0]]["accuracy"], grid[0]
    for mu in grid:
        if search[mu]["accuracy"] < reference - epsilon:
            break
        chosen = mu
    return chosen


def same(a: dict, b: dict) -> bool:
    """Equal accuracy, CWV and MCD (those of them both hold; the search keeps accuracy and CWV), to float32 rounding."""
    return all(abs(a[k] - b[k]) <= 1e-7 for k in ("accuracy", "cwv", "mcd") if k in a and k in b)


class Void(Exception):
    """A set whose changed runs cannot be read: its re-run does not reproduce the kept record."""


def c16_records(name: str, path: pathlib.Path | None = None) -> tuple[list, int]:
    """C16's records of set ``name`` (SETS), written to ``path`` (default records/session29_c16_<name>.json)."""
    files, exported = SETS[name]
    c12 = [r for f in files for r in json.load(open(f))["records"] if r["method"] == "c12"]
    candidates = {}
    if exported and pathlib.Path(exported).exists():
        for c in json.load(open(exported))["candidates"]:
            candidates[(c["seed"], c["target_sparsity"], c["mode"], c["mu"])] = c
    out, changed = [], 0
    for r in c12:
        # the re-choice reads the records as the run read its candidates: the library's own rule must give C12's μ
        val = {float(k): v for k, v in r["search"].items()}
        if choose_within_epsilon(val, val[0.0]["accuracy"], r["epsilon_effective"], "strongest") != r["disparity_weight"]:
            raise SystemExit(f"{name}: C12's rule re-applied to the search of seed {r['seed']} does not give its mu")
        mu = prefix_mu(r["search"], r["epsilon_effective"])
        # the library's rule (session 30's default) is this pre-registered one: checked on every record
        if choose_within_epsilon(val, val[0.0]["accuracy"], r["epsilon_effective"], "strongest_prefix") != float(mu):
            raise SystemExit(f"{name}: the library's strongest_prefix differs from C16 on seed {r['seed']}")
        new = {**r, "method": "c16"}
        if mu != f"{r['disparity_weight']:g}":
            changed += 1
            key = (r["seed"], r["target_sparsity"], r["mode"])
            old, cand = candidates.get((*key, f"{r['disparity_weight']:g}")), candidates.get((*key, mu))
            if cand is None or old is None:
                raise SystemExit(f"{name}: no exported candidates for {key} (mu {mu}); run its workdirs' export first")
            if not (same(old["test"], r["test"]) and same(old["val"], r["search"][f"{r['disparity_weight']:g}"])):
                kept = r["search"][f"{r['disparity_weight']:g}"]["accuracy"]
                raise Void(f"{name}: the re-run of {key} does not reproduce C12's record (its chosen candidate, "
                           f"mu {r['disparity_weight']:g}: validation accuracy {old['val']['accuracy']:.4f} against "
                           f"{kept:.4f} kept)")
            new |= {"disparity_weight": float(mu), "val": cand["val"], "test": cand["test"]}
        out.append(new)
    path = path or R / f"session29_c16_{name}.json"
    path.write_text(json.dumps({"records": out}) + "\n")
    return out, changed


def read_set(name: str, files: list, c16_path: pathlib.Path, better_rows: list, failures: list) -> dict:
    """Prints C16 − C12 per row (``session11_decide.judge``, which appends to ``better_rows`` and ``failures``) and
    returns each one's bar cells against LTH and Magnitude Pruning of ``files`` ({"c12": n, "c16": n})."""
    src = {k: [f"{f}:{k}" for f in files] for k in ("lth", "magnitude", "c12")}
    src["c16"] = [f"{c16_path}:c16"]
    judge(name, compare.collect([f"lth={s}" for s in src["lth"]] + [f"default={s}" for s in src["c12"]]
                                + [f"c16={s}" for s in src["c16"]]), "c16", better_rows, failures)
    cells = {}
    for label in ("c12", "c16"):
        records = compare.collect([f"{k}={s}" for k in ("lth", "magnitude") for s in src[k]]
                                  + [f"ballot={s}" for s in src[label]])
        cells[label] = met_cells(reports.paired_comparisons(records, against=["ballot"]))
    return cells


def main() -> None:
    better_rows, failures, cells, void = [], [], {"c12": 0, "c16": 0}, []
    for name, (files, _) in SETS.items():
        try:
            _, changed = c16_records(name)
        except Void as err:
            print(f"== {name}: VOID: {err}")
            void.append(name)
            continue
        print(f"== {name}: C16 changes {changed} run(s)")
        for label, n in read_set(name, files, R / f"session29_c16_{name}.json", better_rows, failures).items():
            cells[label] += n
    print(f"(a) development bar cells: c16 {cells['c16']}, c12 {cells['c12']} (of {4 * (len(SETS) - len(void))} read)")
    print(f"(b)-(d) failures: {failures or 'none'}; rows significantly fairer than C12 (reported): {better_rows or 'none'}")
    passed = cells["c16"] > cells["c12"] and not failures
    if void and not failures:  # a failure decides; a pass needs every set
        print(f"VERDICT c16: UNDECIDED (void: {', '.join(void)}; on the rest (a) {'holds' if passed else 'does not hold'})")
    else:
        print(f"VERDICT c16: {'PASS' if passed else 'FAIL'}")


if __name__ == "__main__":
    main()
