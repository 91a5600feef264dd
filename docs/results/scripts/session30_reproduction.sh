#!/usr/bin/env bash
# Session 30: is synthetic's non-reproduction a code change or the machine? Session 23's own commit (a790c66, which
# added session23_synthetic.json) re-runs synthetic seed 8 at 95% here (dense + C12, worktree /work/wt_a790, workdir
# /work/runs/s30_repro_synth_a790, resumable), and its μ candidates' validation accuracies are printed beside the kept
# record's and today's re-run's (session30_c16_heldout.sh, exported to session30_heldout_synthetic_candidates.json).
# usage: session30_reproduction.sh   (from the repository root)
set -e
cd "$(dirname "$0")/../../.."
[ -d /work/wt_a790 ] || git worktree add -q /work/wt_a790 a790c66
source docs/results/scripts/set_command.sh
BASE=$(set_command synthetic)
( cd /work/wt_a790 && PYTHONPATH=/work/wt_a790 /work/main/.venv/bin/python -m \
    ${BASE/--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95/--config.seeds=8 --config.sparsities=0.95} \
    --workdir /work/runs/s30_repro_synth_a790 --config.methods=dense,ballot 2>&1 | grep "\[experiments\]" | tail -1 )
python3 - <<'PY'
import json
R = "docs/results/records"
a790 = [r for r in json.load(open("/work/runs/s30_repro_synth_a790/results.json"))["records"] if r["method"] == "ballot"][0]
kept = [r for r in json.load(open(f"{R}/session23_synthetic.json"))["records"]
        if r["method"] == "c12" and r["seed"] == 8 and r["target_sparsity"] == 0.95][0]
today = {c["mu"]: c["val"]["accuracy"] for c in json.load(open(f"{R}/session30_heldout_synthetic_candidates.json"))["candidates"]
         if c["seed"] == 8 and c["target_sparsity"] == 0.95 and c["mode"] == kept["mode"]}
for mu in kept["search"]:
    print(f"mu {mu}: validation accuracy kept {kept['search'][mu]['accuracy']:.4f}, a790c66 here "
          f"{a790['search'][mu]['accuracy']:.4f}, today's code here {today[mu]:.4f}")
PY
