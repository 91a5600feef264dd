#!/usr/bin/env bash
# Session 11: re-create the synthetic held-out set, then the three low-power ones (A.2p) (LTH, Magnitude, the session-10 default Ballot).
set -e
cd /work/main && source .venv/bin/activate
C="--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95 --config.fraction=0.4"
F="$C --config.model_kwargs.channels=16,32 --config.model_kwargs.dense=64 --config.train.steps=300 \
   --config.train.checkpoint_every=0 --config.train.batch_size=64 --config.data.cache_dir=/work/runs/cache --config.methods=lth,magnitude,ballot"
date
python -m experiments.synthetic --workdir /work/runs/s11_synthetic $C --config.methods=lth,magnitude,ballot
date
python -m experiments.celeba --workdir /work/runs/s11_smiling $F --config.data.target=Smiling
date
python -m experiments.celeba --workdir /work/runs/s11_attractive $F --config.data.target=Attractive
date
python -m experiments.celeba --workdir /work/runs/s11_male $F --config.data.target=Male --config.data.sensitive=label
date
