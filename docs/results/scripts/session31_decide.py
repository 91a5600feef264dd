"""Session 31's pre-registered decision of C17 (docs/results/scripts/session31_preregistration.md): the refined training
distils the dense model (`Ballot(distill=1.0)`), against today's default C16.

Per development set: the reproduction check (C17's dense records, exported with its runs, equal the comparison's dense
records seed by seed; a set that fails is void), then C17 − C16 per row (``session11_decide.judge``: criteria (b)-(d)
as failures) and each one's bar cells against LTH and Magnitude Pruning; adopt iff (a) C17's cells > C16's and no
failure, every set read. Reported, deciding nothing: "distillation alone" (C17's μ = 0 candidate in the mode its run
chose) against LTH and Magnitude Pruning, and C17's training time against C16's.

digits-LT10 is read from its re-creation on this machine (session31_digits_lt10.json): its C16 records are the
re-created C12 records once the library's "strongest_prefix" rule is checked to give each one's μ (written to
session31_c16_digits_lt10.json).

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session31_decide.py [--variant c18|c19|c20] [SET ...]

``--variant c18`` decides C18 (session31_c18_preregistration.md: the μ > 0 candidates distil the μ = 0 ticket on its
advantaged groups) the same way, from session31_c18_<SET>.json; its reproduction check adds that every run's μ = 0
candidate (C18 does not change it) has C16's record's μ = 0 validation accuracy and CWV. ``--variant c19`` decides C19
(session32_preregistration.md: the μ > 0 candidates' adversary term reaches only the μ = 0 ticket's groups below the
mean) the same way, from session31_c19_<SET>.json, with C18's check. ``--variant c20`` decides C20
(session33_preregistration.md: the rewinding mode in every run) from session33_c20_<SET>.json on its decision sets
(digits-LT10, Blond_Hair, Wavy_Hair by default), with (a) read as "at least C16's cells" and a check that every run where
C16 chose rewinding has C16's validation figures at every μ.
"""
import glob
import json
import pathlib
import statistics
import sys

from ballot_jax.methods.ballot import choose_within_epsilon
from experiments import compare, reports
from session11_decide import judge
from session14_decide import met_cells

R = pathlib.Path("docs/results/records")
SETS = {  # name: (the comparison's files holding LTH and Magnitude Pruning (and dense), C16's records)
    "cifar10": ([R / "session29_cifar10.json"], R / "session29_c16_cifar10.json"),
    "bignose": ([R / "session29_Big_Nose.json"], R / "session29_c16_big_nose.json"),
    "wavy": (sorted(pathlib.Path(p) for p in glob.glob(f"{R}/session25_wavy*.json")), R / "session29_c16_wavy.json"),
    "blond": (sorted(pathlib.Path(p) for p in glob.glob(f"{R}/session25_blond*.json")), R / "session29_c16_blond.json"),
    "digits_lt10": ([R / "session31_digits_lt10.json"], R / "session31_c16_digits_lt10.json"),
}


def records(path: pathlib.Path, method: str) -> list:
    return [r for r in json.load(open(path))["records"] if r["method"] == method]


def digits_c16() -> None:
    """C16's digits-LT10 records: the re-created C12 runs, each checked to be C16's choice too."""
    out = []
    for r in records(R / "session31_digits_lt10.json", "c12"):
        val = {float(k): v for k, v in r["search"].items()}
        if choose_within_epsilon(val, val[0.0]["accuracy"], r["epsilon_effective"], "strongest_prefix") != r["disparity_weight"]:
            raise SystemExit(f"digits_lt10: C16 changes seed {r['seed']} {r['target_sparsity']}: its candidates are needed")
        out.append({**r, "method": "c16"})
    (R / "session31_c16_digits_lt10.json").write_text(json.dumps({"records": out}) + "\n")


C20_SETS = ("digits_lt10", "blond", "wavy")  # session33_preregistration.md: its decision sets; (a') is "at least C16's"
DENSE = {"cifar10": [R / "session31_cifar10_dense.json"]}  # the comparison's dense records kept apart from its files


def dense_mismatches(name: str, files: list, dense: list) -> list:
    """The seeds of the ``dense`` records whose test figures differ from the comparison's kept dense record."""
    kept = {r["seed"]: r["test"] for f in DENSE.get(name, files) for r in records(f, "dense")}
    return [r["seed"] for r in dense if kept.get(r["seed"]) != r["test"]]


def reproduced(name: str, files: list, c17: pathlib.Path, variant: str = "c17", c16: pathlib.Path | None = None) -> bool:
    ours = records(c17, "dense")
    bad = dense_mismatches(name, files, ours)
    print(f"== {name}: reproduction check: {len(ours) - len(bad)} of {len(ours)} dense records equal the comparison's"
          + (f"; VOID (seeds {sorted(set(bad))})" if bad else ""))
    if variant in ("c18", "c19") and c16 is not None:  # C18 and C19 leave the μ = 0 candidates and the mode choice as C16's
        mine = {(r["seed"], r["target_sparsity"]): r for r in records(c17, variant)}
        theirs = records(c16, "c16")
        differ = [(r["seed"], r["target_sparsity"]) for r in theirs
                  if (m := mine.get((r["seed"], r["target_sparsity"]))) is None or m["mode"] != r["mode"]
                  or search_differs(m, r, ["0"])]
        print(f"   mu = 0 candidates and modes equal to C16's: {len(theirs) - len(differ)} of {len(theirs)}"
              + (f"; VOID ({sorted(differ)})" if differ else ""))
        bad += differ
    if variant == "c20" and c16 is not None:  # C20 trains C16's candidates wherever C16 chose the rewinding mode
        compared, differ = same_training(records(c16, "c16"), records(c17, variant), "iterative_rewind")
        print(f"   runs where C16 chose rewinding with C16's validation figures at every mu: "
              f"{compared - len(differ)} of {compared}" + (f"; VOID ({sorted(differ)})" if differ else ""))
        bad += differ
    return not bad


def search_differs(a: dict, b: dict, mus) -> bool:
    """Whether two runs' μ searches differ in validation accuracy or CWV (by more than 1e-7) at any of ``mus``."""
    return any(abs(a["search"][mu][k] - b["search"][mu][k]) > 1e-7 for mu in mus for k in ("accuracy", "cwv"))


def same_training(c16: list, ours: list, mode: str) -> tuple[int, list]:
    """(compared, differing (seed, sparsity)): C16's runs that chose ``mode``, and those of them where the fixed-mode
    run ``ours`` lacks the run or has other validation accuracy or CWV at some μ of C16's search (to 1e-7)."""
    mine = {(r["seed"], r["target_sparsity"]): r for r in ours}
    theirs = [r for r in c16 if r["mode"] == mode]
    differ = [(r["seed"], r["target_sparsity"]) for r in theirs
              if (m := mine.get((r["seed"], r["target_sparsity"]))) is None or search_differs(m, r, r["search"])]
    return len(theirs), differ


def cells(files: list, source: str) -> int:
    recs = compare.collect([f"{k}={f}:{k}" for k in ("lth", "magnitude") for f in files] + [f"ballot={source}"])
    return met_cells(reports.paired_comparisons(recs, against=["ballot"]))


def distillation_alone(name: str, files: list, c17: pathlib.Path) -> None:
    """C17's μ = 0 candidate in the mode each run chose, against LTH and Magnitude Pruning (bar rows)."""
    cands = {(c["seed"], c["target_sparsity"], c["mode"], c["mu"]): c
             for c in json.load(open(R / f"{c17.stem}_candidates.json"))["candidates"]}
    alone = [{**r, "method": "ballot", **{k: cands[(r["seed"], r["target_sparsity"], r["mode"], "0")][k] for k in ("val", "test")}}
             for r in records(c17, "c17")]
    base = [r for f in files for r in json.load(open(f))["records"] if r["method"] in ("lth", "magnitude")]
    paired = reports.paired_comparisons(base + alone, against=["ballot"])
    for line in compare.bar_summary(paired, ["lth", "magnitude"]):
        if line.startswith("| ballot"):
            print(f"   distillation alone (C17 at mu = 0): {line}")


def main() -> None:
    args = sys.argv[1:]
    variant = "c17"
    if "--variant" in args:
        at = args.index("--variant")
        variant = args[at + 1]
        del args[at:at + 2]
    names = args or (list(C20_SETS) if variant == "c20" else list(SETS))
    digits_c16()
    better_rows, failures, void, missing = [], [], [], []
    totals = {"c16": 0, variant: 0}
    for name in names:
        files, c16 = SETS[name]
        ours = R / f"session{33 if variant == 'c20' else 31}_{variant}_{name}.json"
        if not ours.exists():
            print(f"== {name}: no {variant} records yet ({ours})")
            missing.append(name)
            continue
        if not reproduced(name, files, ours, variant, c16):
            void.append(name)
            continue
        judge(name, compare.collect([f"lth={f}:lth" for f in files] + [f"default={c16}:c16", f"{variant}={ours}:{variant}"]),
              variant, better_rows, failures)
        n = {"c16": cells(files, f"{c16}:c16"), variant: cells(files, f"{ours}:{variant}")}
        time = {k: statistics.mean(r["train_time_s"] for r in records(p, k)) for k, p in (("c16", c16), (variant, ours))}
        print(f"   bar cells: c16 {n['c16']}, {variant} {n[variant]} of 4; mean training time (s, runs of different "
              f"sessions and loads): c16 {time['c16']:.0f}, {variant} {time[variant]:.0f}")
        if variant == "c17":  # C18's and C19's μ = 0 candidates are C16's
            distillation_alone(name, files, ours)
        for k in totals:
            totals[k] += n[k]
    read = len(names) - len(void) - len(missing)
    print(f"(a) development bar cells: {variant} {totals[variant]}, c16 {totals['c16']} (of {4 * read} read)")
    print(f"(b)-(d) failures: {failures or 'none'}; rows significantly fairer than C16 (reported): {better_rows or 'none'}")
    if variant == "c20" and any(n not in C20_SETS for n in names):
        print(f"(not a decision: C20 is decided on {', '.join(C20_SETS)} alone; the others motivated it)")
    a_holds = totals[variant] >= totals["c16"] if variant == "c20" else totals[variant] > totals["c16"]
    passed = a_holds and not failures
    if (void or missing) and not failures:  # a failure decides; a pass needs every set
        print(f"VERDICT {variant}: UNDECIDED (void: {void or 'none'}; not run yet: {missing or 'none'}; on the sets read "
              f"(a) {'holds' if a_holds else 'does not hold'})")
    else:
        print(f"VERDICT {variant}: {'PASS' if passed else 'FAIL'}")


if __name__ == "__main__":
    main()
