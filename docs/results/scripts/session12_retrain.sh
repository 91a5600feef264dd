#!/usr/bin/env bash
# Session 12: retrain Ballot's μ > 0 candidates with other options in a full copy of the default's workdir
# (μ = 0 candidates and the mode choice, which have no disparity term, are kept).
# usage: session12_retrain.sh SET VARIANT [--config.ballot.* ...]   copy: /work/runs/s12_<SET>__<VARIANT>
set -e
cd /work/main && source .venv/bin/activate
SET=$1; VARIANT=$2; shift 2
C="--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95 --config.fraction=0.4"
I="$C --config.model_kwargs.channels=16,32 --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0"
F="$I --config.train.batch_size=64 --config.data.cache_dir=/work/runs/cache"
case $SET in
  blond) CMD="experiments.celeba $F --config.data.target=Blond_Hair";;
  wavy) CMD="experiments.celeba $F --config.data.target=Wavy_Hair";;
  cifar10) CMD="experiments.cifar10 $I";;
  *) echo "unknown development set $SET"; exit 2;;
esac
SRC=/work/runs/s11_$SET; DST=/work/runs/s12_${SET}__$VARIANT
rm -rf "$DST"; cp -a "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache "$DST"/seed_*/sparsity_*/ballot/*/mu_0.* "$DST"/seed_*/sparsity_*/ballot/*/mu_1
date
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
date
