# Sourced by session11_rechoose.sh and session12_retrain.sh: the experiment command of a re-created set
# (session 11's config: 5 seeds, 80%/95%, f = 0.4, SmallCNN 16-32/64, 300 steps a level).
# Every kept record was made before session 37's compiler options (ballot_jax/compiler.py), which change how XLA:CPU
# rounds the convolutions: re-creations compile with XLA's defaults, as those records were (session 39 found a
# Blond_Hair re-run without it differing in every dense record).
export BALLOT_JAX_XLA_DEFAULTS=1
# usage: CMD=$(set_command SET)   (prints "experiments.<module> <flags>"; unknown SET: returns 2)
set_command() {
  local C="--config.seeds=0,1,2,3,4 --config.sparsities=0.8,0.95 --config.fraction=0.4"
  local I="$C --config.model_kwargs.channels=16,32 --config.model_kwargs.dense=64 --config.train.steps=300 --config.train.checkpoint_every=0"
  local F="$I --config.train.batch_size=64 --config.data.cache_dir=/work/runs/cache"
  case $1 in
    blond) echo "experiments.celeba $F --config.data.target=Blond_Hair";;
    wavy) echo "experiments.celeba $F --config.data.target=Wavy_Hair";;
    bignose) echo "experiments.celeba $F --config.data.target=Big_Nose";;  # session 29's dev set
    cifar10) echo "experiments.cifar10 $I";;
    young) echo "experiments.celeba $F --config.data.target=Young";;
    smiling) echo "experiments.celeba $F --config.data.target=Smiling";;
    attractive) echo "experiments.celeba $F --config.data.target=Attractive";;
    male) echo "experiments.celeba $F --config.data.target=Male --config.data.sensitive=label";;
    cifar10_lt10) echo "experiments.cifar10_lt $I";;
    synthetic) echo "experiments.synthetic $C";;
    digits_lt10) echo "experiments.digits $C --config.data.imbalance_ratio=10";;  # session 15's dev set
    *) echo "unknown set $1" >&2; return 2;;
  esac
}

# usage: check_set SET   (returns 2 with a message for an unknown set, or a held-out one unless
# AFTER_DECISION=1: a held-out set runs only after the variant's decision; session 13)
check_set() {
  case $1 in
    blond|wavy|bignose|cifar10|digits_lt10) ;;
    young|smiling|attractive|male|cifar10_lt10|synthetic) [ "$AFTER_DECISION" = 1 ] || {
      echo "$1 is held out: set AFTER_DECISION=1 only after the variant's decision" >&2; return 2; };;
    *) echo "unknown set $1" >&2; return 2;;
  esac
}
