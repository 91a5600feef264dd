"""Session 39: the per-run mode choice made only where the validation split resolves it (a diagnosis from kept records;
nothing trained, nothing adopted).

Session 33 (results A.3) found the default's mode choice (`mode_rule="accurate"`: the mode whose μ = 0 candidate has
the higher validation accuracy) picking the fine-tuning mode on margins within a standard error of the split, and
C20 (rewinding in every run) failing on digits-LT10, where fine-tuning is the more accurate mode for real. The rule in
between, read here ("C21"): fine-tune iff its μ = 0 validation accuracy exceeds the rewinding mode's by more than one
standard error of the split, sqrt(a (1 − a) / n_val) at the higher of the two (C10's resolution, method.md §5.6),
else rewind (LTH's mode, whose μ = 0 candidate is LTH's ticket).

Where C21 keeps C16's mode the run is C16's record; where it switches to rewinding the run is the rewinding mode's
record of the same seed (C20 on digits-LT10, the `rewind only` ablation on CIFAR-10 and Big_Nose seeds 0-4, both
checked by session 33 to train C16's candidates where C16 rewound); a switch to fine-tuning would need the fine-tuning
records (none occurs on the sets read, and the script stops if one does). Blond_Hair and Wavy_Hair have no
rewinding-mode records: only the runs C21 would switch are counted there.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session39_mode_se.py

Every set read here motivated or decided C20 before, so nothing here can decide C21: it says whether a decision run is
worth its training.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session39_mode_se.py --decide

decides C21 by its pre-registered rule (session39_preregistration.md) on Blond_Hair and Wavy_Hair, from the
rewinding-mode runs of `VARIANT=c21 bash docs/results/scripts/session31_c17.sh SET run|check|report` (records
session39_c21_<SET>.json): reproduction checks first (dense records equal the comparison's; every run where C16 chose
rewinding has C16's validation figures at every μ; a set that fails is void), then (a) bar cells at least C16's,
(b) no row significantly less fair than C16, (d) no row more than a point below LTH where C16 was within it; the
accuracy against C16 (C20's (c), "(iii)" below) is printed and decides nothing.

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session39_mode_se.py --oracle

bounds what any mode rule could buy (a diagnosis that reads test accuracy, never a rule): each run's mode chosen by
the *test* accuracy of the two modes' final records (the perfect form of `mode_rule="accurate"`; ties: C16's mode), bar
cells against C16's on the same seeds. Both modes' records exist for every run on CIFAR-10 and Big_Nose (seeds 0-4,
A.3's fixed-mode ablations); on Blond_Hair the fine-tuning record exists only where C16 chose it (13 of 20 runs), so
there the oracle may move a run to rewinding but never to fine-tuning.
"""
import json
import sys

from ballot_jax.methods.ballot import choose_mode, split_standard_error
from experiments import reports
from session11_decide import judge
from session14_decide import met_cells
from session31_decide import R, SETS, dense_mismatches, records, same_training

N_VAL = {"cifar10": 500, "bignose": 800, "blond": 799, "wavy": 800, "digits_lt10": 179}  # validation split sizes
REWIND = {"cifar10": ("session33_abl_rewind_cifar10.json", "abl_rewind"),  # the rewinding mode in every run
          "bignose": ("session33_abl_rewind_bignose.json", "abl_rewind"),
          "digits_lt10": ("session33_c20_digits_lt10.json", "c20")}
DECIDE = {"blond": ("session39_c21_blond.json", "c21"), "wavy": ("session39_c21_wavy.json", "c21")}
C16_CELLS = {"blond": 4, "wavy": 3}  # the pre-registration's (a)
ORACLE = {"cifar10": (("session33_abl_finetune_cifar10.json", "abl_finetune"), REWIND["cifar10"]),  # (fine-tuning, rewinding)
          "bignose": (("session33_abl_finetune_bignose.json", "abl_finetune"), REWIND["bignose"]),
          "blond": (None, DECIDE["blond"])}
FT, RW = "one_shot_finetune", "iterative_rewind"


def check_counts(name: str, recs: list) -> None:
    """Every μ = 0 validation accuracy is k / N_VAL[name] (float32): the split size is the one the records used."""
    n = N_VAL[name]
    for r in recs:
        for mode in (FT, RW):
            a = r["mode_search"][mode]["accuracy"]
            if abs(a * n - round(a * n)) > 2e-3:
                raise SystemExit(f"{name}: {a} is not k/{n} (seed {r['seed']}, {mode})")


def c21_mode(r: dict, n: int) -> tuple[str, float, float]:
    """(C21's mode by the library's rule, fine-tuning − rewinding validation accuracy, the split's standard error)."""
    ft, rw = (r["mode_search"][m]["accuracy"] for m in (FT, RW))
    mode = choose_mode(r["mode_search"], 0.01, "resolved", num_val=n, fallback=RW)
    return mode, ft - rw, split_standard_error(max(ft, rw), n)


def by_run(recs) -> dict:
    return {(r["seed"], r["target_sparsity"]): r for r in recs}


def baselines(files: list, seeds) -> list:
    """LTH's and Magnitude Pruning's records of ``seeds`` in the comparison's ``files``."""
    return [x for f in files for x in json.load(open(f))["records"]
            if x["method"] in ("lth", "magnitude") and x["seed"] in seeds]


def read(name: str, rewind_runs: dict, decide: bool) -> tuple[int, int, list]:
    """Print each run's margin and C21's mode; for a set with rewinding-mode runs, C21's paired rows against C16 and
    its bar cells. Returns (C21's cells, C16's cells, failures) (cells -1 where not read)."""
    files, c16_path = SETS[name]
    c16 = records(c16_path, "c16")
    check_counts(name, c16)
    seeds = sorted({r["seed"] for r in c16})
    rewound = None
    if name in rewind_runs:
        path, method = rewind_runs[name]
        rewound = by_run(records(R / path, method))
        seeds = sorted({s for s, _ in rewound})
    print(f"== {name} (n_val {N_VAL[name]}, seeds {seeds[0]}-{seeds[-1]})")
    if decide:
        bad = dense_mismatches(name, files, records(R / rewind_runs[name][0], "dense"))
        compared, differ = same_training(c16, list(rewound.values()), RW)
        print(f"   checks: dense records differing from the comparison's: {bad or 'none'}; runs where C16 chose "
              f"rewinding with C16's validation figures at every mu: {compared - len(differ)} of {compared}")
        if bad or differ:
            print(f"   VOID ({sorted(set(bad))}, {sorted(differ)})")
            return -1, -1, [f"void {name}"]
    c21, switched = [], 0
    for r in sorted(c16, key=lambda r: (r["target_sparsity"], r["seed"])):
        if r["seed"] not in seeds:
            continue
        mode, margin, se = c21_mode(r, N_VAL[name])
        switch = mode != r["mode"]
        switched += switch
        if switch and mode == FT:
            raise SystemExit(f"{name}: C21 switches seed {r['seed']} to fine-tuning; its records are needed")
        print(f"   {r['target_sparsity']:g} seed {r['seed']}: fine-tune − rewind {100 * margin:+.2f} pt, one SE "
              f"{100 * se:.2f}: C16 {r['mode']}, C21 {mode}{'  <- switched' if switch else ''}")
        if rewound is not None:
            c21.append({**(rewound[(r["seed"], r["target_sparsity"])] if switch else r), "method": "c21"})
    print(f"   runs switched to rewinding: {switched}")
    if rewound is None:
        return -1, -1, []
    base = baselines(files, seeds)
    ours = [{**x, "method": "default"} for x in c16 if x["seed"] in seeds]
    rows, failures = [], []
    judge(name, base + ours + c21, "c21", rows, failures)
    cells = {k: met_cells(reports.paired_comparisons(base + [{**x, "method": "ballot"} for x in v], against=["ballot"]))
             for k, v in (("c16", ours), ("c21", c21))}
    print(f"   bar cells (seeds {seeds[0]}-{seeds[-1]}): C16 {cells['c16']}, C21 {cells['c21']} of 4; "
          f"significantly fairer rows: {rows or 'none'}; rows failing session 33's (b)-(d): {failures or 'none'}")
    return cells["c21"], cells["c16"], failures


def oracle(name: str) -> None:
    """Bar cells with each run's mode chosen by the two modes' test accuracies (see the module docstring)."""
    files, c16_path = SETS[name]
    ft_src, rw_src = ORACLE[name]
    by_mode = {RW: by_run(records(R / rw_src[0], rw_src[1]))}
    c16 = by_run(records(c16_path, "c16"))
    by_mode[FT] = by_run(records(R / ft_src[0], ft_src[1])) if ft_src else {k: r for k, r in c16.items() if r["mode"] == FT}
    runs = sorted(by_mode[RW])
    chosen, moved = [], 0
    for key in runs:
        options = {m: by_mode[m][key] for m in (FT, RW) if key in by_mode[m]}
        best = max(options, key=lambda m: (options[m]["test"]["accuracy"], m == c16[key]["mode"]))
        moved += best != c16[key]["mode"]
        chosen.append({**options[best], "method": "ballot"})
    seeds = {s for s, _ in runs}
    base = baselines(files, seeds)
    ours = [{**c16[k], "method": "ballot"} for k in runs]
    cells = [met_cells(reports.paired_comparisons(base + v, against=["ballot"])) for v in (ours, chosen)]
    print(f"== {name} (seeds {min(seeds)}-{max(seeds)}): the test-accuracy oracle moves {moved} of {len(runs)} runs' "
          f"mode; bar cells C16 {cells[0]}, oracle {cells[1]} of 4")


def main() -> None:
    if "--oracle" in sys.argv[1:]:
        for name in ORACLE:
            oracle(name)
        return
    if "--decide" in sys.argv[1:]:
        got, failures = 0, []
        for name in DECIDE:
            if not (R / DECIDE[name][0]).exists():
                print(f"== {name}: no C21 records yet ({DECIDE[name][0]})")
                failures.append(f"missing {name}")
                continue
            cells, c16_cells, fails = read(name, DECIDE, decide=True)
            if c16_cells not in (-1, C16_CELLS[name]):
                raise SystemExit(f"{name}: C16's cells {c16_cells}, the pre-registration's {C16_CELLS[name]}")
            got += max(cells, 0)
            failures += [f for f in fails if not f.startswith("(iii)")]  # (iii): C20's (c), reported only
        a = got >= sum(C16_CELLS.values())
        print(f"(a) bar cells: C21 {got}, C16 {sum(C16_CELLS.values())} of 8; (b), (d) and checks: {failures or 'no failure'}")
        undecided = [f for f in failures if f.startswith(("void", "missing"))]
        if undecided and len(undecided) == len(failures):
            print(f"VERDICT c21: UNDECIDED ({undecided})")
        else:
            print(f"VERDICT c21: {'PASS' if a and not failures else 'FAIL'}")
        return
    for name in ("cifar10", "bignose", "digits_lt10", "blond", "wavy"):
        read(name, REWIND, decide=False)


if __name__ == "__main__":
    main()
