#!/usr/bin/env bash
# Session 24: the dense net alone on the CelebA development targets at seeds 0-9 (session 11's configuration), to see
# whether the weak seeds E1 met on the held-out targets (3; 6, 7, 9) are weak on the development ones too. Nothing
# is chosen from it. usage: session24_dense_seeds.sh CODE_DIR   (workdirs /work/runs/s24_<SET>_dense)
set -e
CODE=$1
source /work/main/.venv/bin/activate
cd "$CODE"
source docs/results/scripts/set_command.sh
for SET in blond wavy; do
  CMD=$(set_command "$SET")
  python -m ${CMD/--config.seeds=0,1,2,3,4/--config.seeds=0,1,2,3,4,5,6,7,8,9} --workdir /work/runs/s24_${SET}_dense \
    --config.methods=dense 2>&1 | { grep "\[experiments\].*test acc" || true; }
  python - /work/runs/s24_${SET}_dense <<'PY'
import json, sys
for s in range(10):
    t = json.load(open(f"{sys.argv[1]}/seed_{s}/dense/record.json"))["test"]
    print(f"seed {s}: test acc {100 * t['accuracy']:.2f}%  per group {[round(a, 3) for a in t['per_group_accuracy']]}"
          f"  DP {t['demographic_parity_difference']:.3f}  CWV {t['cwv']:.5f}")
PY
done
