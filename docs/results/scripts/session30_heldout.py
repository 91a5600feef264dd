"""Session 30: C16 (the default since its decision, c88dc47: PASS) on the six held-out sets, read after the decision.

C16 is a re-choice among C12's trained candidates: for every held-out C12 record its μ is recomputed from the record's
validation search (session29_decide.prefix_mu); where it differs, the new candidate's test metrics come from the
re-run of that (seed, sparsity) by session30_c16_heldout.sh, exported to session30_heldout_<SET>_candidates.json, whose
candidate at C12's μ must reproduce the kept record (else the set is void). Records: the CelebA targets' T2 records
(session25_<SET>*.json), CIFAR-10-LT's E1 records (session21_<SET>.json seeds 0-4, session23_<SET>.json seeds 5-9)
and synthetic's; for these two, once `session30_heldout_records.sh SET` has re-created them on this machine (E1's do
not reproduce here), session30_<SET>.json with every candidate in session30_<SET>_candidates_all.json. Writes
docs/results/records/session30_c16_<SET>.json and prints, per set, C16 − C12 per row and the bar cells against LTH and
Magnitude Pruning of both (C12's, on kept records, must equal the held-out bar's: checked).

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session30_heldout.py
"""
import glob
import pathlib

import session29_decide as decide

R = decide.R
C12_CELLS = {"attractive": 1, "male": 1, "smiling": 0, "young": 0, "synthetic": 4, "cifar10_lt10": 3}  # A.2zh


def held_out_sets() -> dict:
    """{SET: (C12's record files, the exported candidates)}."""
    sets = {}
    for name in ("attractive", "male", "smiling", "young"):
        sets[name] = sorted(glob.glob(f"{R}/session25_{name}_s*.json"))
    for name in ("synthetic", "cifar10_lt10"):
        sets[name] = [f"{R}/session21_{name}.json", f"{R}/session23_{name}.json"]
    sets = {name: (files, f"{R}/session30_heldout_{name}_candidates.json") for name, files in sets.items()}
    for name in ("synthetic", "cifar10_lt10"):  # re-created on this machine
        if (R / f"session30_{name}.json").exists():
            sets[name] = ([f"{R}/session30_{name}.json"], f"{R}/session30_{name}_candidates_all.json")
    return sets


def recreated(files: list) -> bool:
    """Records re-created on this machine in session 30: the held-out bar's C12_CELLS (kept records) do not apply."""
    return any(pathlib.Path(f).name.startswith("session30_") for f in files)


def main() -> None:
    decide.SETS.clear()
    decide.SETS.update(held_out_sets())
    cells, void, better_rows, failures = {"c12": 0, "c16": 0}, [], [], []
    for name, (files, _) in decide.SETS.items():
        try:
            _, changed = decide.c16_records(name, R / f"session30_c16_{name}.json")
        except decide.Void as err:
            print(f"== {name}: VOID: {err}")
            void.append(name)
            continue
        print(f"== {name}: C16 changes {changed} run(s)")
        read = decide.read_set(name, files, R / f"session30_c16_{name}.json", better_rows, failures)
        if not recreated(files) and read["c12"] != C12_CELLS[name]:
            raise SystemExit(f"{name}: C12's cells read here ({read['c12']}) are not the held-out bar's "
                             f"({C12_CELLS[name]})")
        print(f"{name}: bar cells c16 {read['c16']}, c12 {read['c12']} of 4")
        for label, n in read.items():
            cells[label] += n
    read_sets = 4 * (len(decide.SETS) - len(void))
    print(f"held-out bar cells: c16 {cells['c16']}, c12 {cells['c12']} of {read_sets} read"
          + (f" (void: {', '.join(void)})" if void else ""))
    print(f"rows where C16 is significantly less fair, less accurate or newly > 1 point below LTH: {failures or 'none'}; "
          f"significantly fairer: {better_rows or 'none'}")


if __name__ == "__main__":
    main()
