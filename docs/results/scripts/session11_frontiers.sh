#!/usr/bin/env bash
# Session 11: the μ-frontier report of every re-created workdir (results A.2r); nothing trained.
set -e
cd "$(dirname "$0")/../../.." && source .venv/bin/activate
for pair in dev_celeba_blond=blond dev_celeba_wavy=wavy dev_cifar10=cifar10 heldout_celeba_young=young \
            heldout_cifar10_lt10=cifar10_lt10 heldout_synthetic=synthetic heldout_celeba_smiling=smiling \
            heldout_celeba_attractive=attractive heldout_celeba_male_label=male; do
  out=${pair%%=*}; wd=/work/runs/s11_${pair#*=}
  [ -f "$wd/results.json" ] || { echo "skip $wd (not finished)"; continue; }
  PYTHONPATH=. python -m experiments.mu_frontier --workdir "$wd" --baseline lth --baseline magnitude \
    --out "docs/results/${out}_mu_frontier.md" | grep "Cells met" | sed "s|^|$out: |"
done
