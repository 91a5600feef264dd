"""Session 14: the default (C7 copies /work/runs/s12_<SET>__c7) against SafeCompress (/work/runs/s12_<SET>_others)
on every set, and its bar cells against LTH and Magnitude Pruning (/work/runs/s11_<SET>).

    PYTHONPATH=. python docs/results/scripts/session14_vs_safecompress.py [SET ...]"""
import sys

from experiments import compare, reports
from session14_decide import met_cells

SETS = ["blond", "wavy", "cifar10", "synthetic", "young", "cifar10_lt10", "male", "smiling", "attractive"]

for name in sys.argv[1:] or SETS:
    base = f"/work/runs/s11_{name}"
    records = compare.collect([f"lth={base}:lth", f"magnitude={base}:magnitude",
                               f"safecompress=/work/runs/s12_{name}_others:safecompress",
                               f"ballot=/work/runs/s12_{name}__c7:ballot"])
    paired = reports.paired_comparisons(records, against=["ballot"])
    cells = met_cells(paired)
    get = {(e["baseline"], e["sparsity"], e["metric"]): e for e in paired}
    rows = []
    for sparsity in sorted({e["sparsity"] for e in paired}):
        cwv, mcd, acc = (get[("safecompress", sparsity, k)] for k in ("cwv", "mcd", "accuracy"))
        rows.append(f"{sparsity:g}: CWV {cwv['mean_difference']:+.5f} ({cwv['verdict']}), MCD {mcd['mean_difference']:+.4f} "
                    f"({mcd['verdict']}), acc {acc['mean_difference'] * 100:+.2f} ({acc['verdict']})")
    print(f"{name}: bar cells {cells} of 4 | ballot - safecompress " + " ; ".join(rows))
