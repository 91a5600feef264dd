#!/usr/bin/env bash
# Session 11: re-choose Ballot in a hard-linked copy of the default's workdir (candidates resumed, nothing retrained).
# usage: rechoose.sh SET VARIANT [--config.ballot.* ...]   SET: one of the names below; copy: /work/runs/s11_<SET>__<VARIANT>
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
  young) CMD="experiments.celeba $F --config.data.target=Young";;
  smiling) CMD="experiments.celeba $F --config.data.target=Smiling";;
  attractive) CMD="experiments.celeba $F --config.data.target=Attractive";;
  male) CMD="experiments.celeba $F --config.data.target=Male --config.data.sensitive=label";;
  cifar10_lt10) CMD="experiments.cifar10_lt $I";;
  synthetic) CMD="experiments.synthetic $C";;
  *) echo "unknown set $SET"; exit 2;;
esac
SRC=/work/runs/s11_$SET; DST=/work/runs/s11_${SET}__$VARIANT
rm -rf "$DST"; cp -al "$SRC" "$DST"
rm -f "$DST"/config.json "$DST"/results.* "$DST"/*.png "$DST"/seed_*/sparsity_*/ballot.record.json
rm -rf "$DST"/jax_cache
python -m $CMD --workdir "$DST" --config.methods=ballot "$@" 2>&1 | grep "\[experiments\].*test acc" | tail -2
