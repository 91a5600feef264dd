"""Session 14: mean test CWV, test accuracy (%), `train_time_s` and the chosen μ of seeds 0-4 of Ballot's records, per
set and sparsity, for the session-13 default (/work/runs/s11_<SET>) and each variant's copy
(/work/runs/s12_<SET>__<VARIANT>): the figures of results A.2w's tables and cost line.

    python docs/results/scripts/session14_means.py SET [SET ...] [--variants c7,c8]"""
import json
import statistics
import sys

args = sys.argv[1:]
variants = ["c7"]
if "--variants" in args:
    at = args.index("--variants")
    variants = args[at + 1].split(",")
    del args[at:at + 2]
for name in args:
    for sparsity in ("0.8", "0.95"):
        cells = []
        for label, workdir in [("default", f"/work/runs/s11_{name}")] + [(v, f"/work/runs/s12_{name}__{v}") for v in variants]:
            records = [json.load(open(f"{workdir}/seed_{seed}/sparsity_{sparsity}/ballot.record.json")) for seed in range(5)]
            cwv = statistics.mean(r["test"]["cwv"] for r in records)
            accuracy = 100 * statistics.mean(r["test"]["accuracy"] for r in records)
            seconds = statistics.mean(r.get("train_time_s", 0.0) for r in records)
            chosen = ",".join(f"{r['disparity_weight']:g}" for r in records)
            cells.append(f"{label} {cwv:.5f} ({accuracy:.1f}) {seconds:.1f} s, μ {chosen}")
        print(f"{name} {sparsity}: " + " | ".join(cells))
