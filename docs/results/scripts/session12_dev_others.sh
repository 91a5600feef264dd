#!/usr/bin/env bash
# Session 12: SafeCompress, FairScratch (the authors' presets) and the authors' Ballot on the three development sets,
# in new workdirs seeded with the session-11 dense phases (the same seeds' level 0 as LTH, Magnitude and the default).
set -e
cd /work/main && source .venv/bin/activate
C="--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95 --config.fraction=0.4 --config.model_kwargs.channels=16,32 \
   --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0"
F="$C --config.train.batch_size=64 --config.data.cache_dir=/work/runs/cache"
M="--config.methods=safecompress,fairscratch,ballot_authors"
for SET in blond wavy cifar10; do
  DST=/work/runs/s12_${SET}_others; mkdir -p "$DST"
  for s in 0 1 2 3 4; do mkdir -p "$DST/seed_$s"; [ -d "$DST/seed_$s/dense" ] || cp -a /work/runs/s11_$SET/seed_$s/dense "$DST/seed_$s/"; done
  date; echo "== $SET"
  case $SET in
    blond) python -m experiments.celeba --workdir "$DST" $F --config.data.target=Blond_Hair $M;;
    wavy) python -m experiments.celeba --workdir "$DST" $F --config.data.target=Wavy_Hair $M;;
    cifar10) python -m experiments.cifar10 --workdir "$DST" $C $M;;
  esac 2>&1 | grep "\[experiments\].*test acc"
done
date
