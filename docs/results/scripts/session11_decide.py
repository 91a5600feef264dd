"""Session 11's pre-registered decision rule (docs/results/scripts/session11_preregistration.md).

    PYTHONPATH=. python docs/results/scripts/session11_decide.py VARIANT [SET ...] [--copies s12]

For each development set (default: blond wavy cifar10) reads /work/runs/s11_<SET> (lth, magnitude,
the default ballot) and /work/runs/s11_<SET>__<VARIANT> (the re-chosen ballot; with ``--copies s12``:
/work/runs/s12_<SET>__<VARIANT>, session 12's retrained copies) and prints, per row (set, sparsity),
the variant's paired differences against the default and the rule's criteria. ``judge`` and
``verdict`` are reused by session12_decide.py."""
import sys

from experiments import compare, reports


def judge(name: str, records: list, variant: str, better_rows: list, failures: list) -> None:
    """Print each sparsity's row of ``variant`` against ``default`` (and both against ``lth``) in
    ``records``; append the row to ``better_rows`` if it meets criterion (i), and to ``failures``
    each of (ii)-(iv) it breaks."""
    paired = reports.paired_comparisons(records, against=[variant])
    get = {(e["baseline"], e["sparsity"], e["metric"]): e for e in paired}
    default_vs_lth = reports.paired_comparisons(records, against=["default"])
    get_d = {(e["baseline"], e["sparsity"], e["metric"]): e for e in default_vs_lth}
    for sparsity in sorted({e["sparsity"] for e in paired}):
        cwv, mcd, acc = (get[("default", sparsity, k)] for k in ("cwv", "mcd", "accuracy"))
        changed = sum(d != 0 for d in cwv["differences"])
        acc_lth = get[("lth", sparsity, "accuracy")]["mean_difference"] * 100
        acc_lth_default = get_d[("lth", sparsity, "accuracy")]["mean_difference"] * 100
        row = f"{name} {sparsity:g}"
        print(f"{row}: seeds changed {changed}/{len(cwv['differences'])}; vs default: acc {acc['mean_difference'] * 100:+.2f} ({acc['verdict']}), "
              f"CWV {cwv['mean_difference']:+.5f} [{cwv['ci_low']:+.5f}, {cwv['ci_high']:+.5f}] ({cwv['verdict']}), "
              f"MCD {mcd['mean_difference']:+.4f} ({mcd['verdict']}); acc vs LTH {acc_lth:+.2f} (default {acc_lth_default:+.2f})")
        if cwv["verdict"] == "significant, better":
            better_rows.append(row)
        if "significant, worse" in (cwv["verdict"], mcd["verdict"]):
            failures.append(f"(ii) {row}")
        if acc["verdict"] == "significant, worse":
            failures.append(f"(iii) {row}")
        if compare.within_points(acc_lth_default) and not compare.within_points(acc_lth):  # as the bar reads it
            failures.append(f"(iv) {row}")


def verdict(variant: str, better_rows: list, failures: list) -> None:
    print(f"(i) rows with CWV significantly lower than the default's: {len(better_rows)} {better_rows}")
    print(f"failures: {failures or 'none'}")
    print(f"VERDICT {variant}: {'PASS' if better_rows and not failures else 'FAIL'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    copies = "s11"
    if "--copies" in args:
        at = args.index("--copies")
        copies = args[at + 1]
        del args[at:at + 2]
    variant, sets = args[0], args[1:] or ["blond", "wavy", "cifar10"]
    better_rows, failures = [], []
    for name in sets:
        base = f"/work/runs/s11_{name}"
        judge(name, compare.collect([f"lth={base}:lth", f"default={base}:ballot",
                                     f"{variant}=/work/runs/{copies}_{name}__{variant}:ballot"]),
              variant, better_rows, failures)
    verdict(variant, better_rows, failures)
