#!/usr/bin/env bash
# Session 11: re-create the three resolvable development sets (LTH, Magnitude, the session-10 default Ballot).
set -e
cd /work/main && source .venv/bin/activate
C="--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95 --config.fraction=0.4 --config.model_kwargs.channels=16,32 \
   --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0"
F="$C --config.train.batch_size=64 --config.data.cache_dir=/work/runs/cache"
date
python -m experiments.celeba --workdir /work/runs/s11_blond $F --config.data.target=Blond_Hair --config.methods=lth,magnitude,ballot
date
python -m experiments.celeba --workdir /work/runs/s11_wavy $F --config.data.target=Wavy_Hair --config.methods=lth,magnitude,ballot
date
python -m experiments.cifar10 --workdir /work/runs/s11_cifar10 $C --config.methods=lth,magnitude,ballot
date
