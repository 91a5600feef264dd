#!/usr/bin/env bash
# Session 11: re-create the held-out Young records (the session-10 default), then CIFAR-10-LT x10.
set -e
cd /work/main && source .venv/bin/activate
date
python -m experiments.celeba --workdir /work/runs/s11_young --config.seeds=0,1,2,3,4 \
  --config.sparsities=0.8,0.95 --config.fraction=0.4 --config.model_kwargs.channels=16,32 \
  --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0 \
  --config.train.batch_size=64 --config.data.target=Young --config.methods=lth,magnitude,ballot \
  --config.data.cache_dir=/work/runs/cache
date
python -m experiments.cifar10_lt --workdir /work/runs/s11_cifar10_lt10 --config.seeds=0,1,2,3,4 \
  --config.sparsities=0.8,0.95 --config.fraction=0.4 --config.model_kwargs.channels=16,32 \
  --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0 \
  --config.methods=lth,magnitude,ballot
date
