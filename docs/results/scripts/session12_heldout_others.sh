#!/usr/bin/env bash
# Session 12: SafeCompress, FairScratch (the authors' presets) and the authors' Ballot on the six held-out sets
# (reported only; nothing is chosen on them), in new workdirs seeded with the session-11 dense phases.
set -e
cd /work/main && source .venv/bin/activate
C="--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95 --config.fraction=0.4"
I="$C --config.model_kwargs.channels=16,32 --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0"
F="$I --config.train.batch_size=64 --config.data.cache_dir=/work/runs/cache"
M="--config.methods=safecompress,fairscratch,ballot_authors"
for SET in synthetic young cifar10_lt10 male smiling attractive; do
  DST=/work/runs/s12_${SET}_others; mkdir -p "$DST"
  for s in 0 1 2 3 4; do mkdir -p "$DST/seed_$s"; [ -d "$DST/seed_$s/dense" ] || cp -a /work/runs/s11_$SET/seed_$s/dense "$DST/seed_$s/"; done
  date; echo "== $SET"
  case $SET in
    synthetic) python -m experiments.synthetic --workdir "$DST" $C $M;;
    young) python -m experiments.celeba --workdir "$DST" $F --config.data.target=Young $M;;
    cifar10_lt10) python -m experiments.cifar10_lt --workdir "$DST" $I $M;;
    male) python -m experiments.celeba --workdir "$DST" $F --config.data.target=Male --config.data.sensitive=label $M;;
    smiling) python -m experiments.celeba --workdir "$DST" $F --config.data.target=Smiling $M;;
    attractive) python -m experiments.celeba --workdir "$DST" $F --config.data.target=Attractive $M;;
  esac 2>&1 | grep --line-buffered "\[experiments\].*test acc"
done
date
