"""scikit-learn's bundled 8x8 digits (no download): the whole comparison in a few minutes on a CPU.

    python -m experiments.digits                       # -> runs/digits/results.md
    python -m experiments.digits --config.sparsity=0.95 --config.methods=lth,ballot
    python -m experiments.digits --config.data.imbalance_ratio=10 --workdir runs/digits_lt   # digits-LT

Groups are the 10 classes (class-wise fairness, as for CIFAR-10). ``data.imbalance_ratio`` > 1 keeps
a long-tailed subset of the train split (digit 0 the head, digit 9 the tail with 1/ratio of its
images; ``ballot_jax.data.digits.load_digits``), validation and test balanced.
"""

from __future__ import annotations

import sys

from experiments import run


def get_config():
    config = run.base_config()
    config.dataset = "digits"
    config.data.seed = 0  # the train/val/test split (fixed across training seeds)
    config.data.val_fraction = 0.1
    config.data.test_fraction = 0.2
    config.data.imbalance_ratio = 1.0  # > 1: long-tailed train split (digits-LT); 1 = as stored
    config.model = "mlp"
    config.model_kwargs.hidden = (128, 128)
    config.train.steps = 200  # per level: ~13 epochs of the 1,259 training digits
    config.train.batch_size = 80  # divisible by the 10 groups (balanced sampling) and 1/2/4/8/16 devices
    config.train.learning_rate = 0.05
    config.train.rewind_step = 10  # late rewinding to θ_k (k = 10)
    config.train.checkpoint_every = 0  # levels take a fraction of a second: no mid-phase checkpoints
    config.sparsities = "0.8"  # add more, e.g. "0.5,0.8,0.9", for curves (about +1 min each)
    config.seeds = "0,1,2"
    if "ballot" in config:
        config.ballot.score_batches = 4
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
