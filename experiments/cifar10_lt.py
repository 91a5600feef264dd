"""Long-tailed CIFAR-10 (CIFAR-10-LT), class-wise fairness: the groups are the 10 classes.

    python -m experiments.cifar10_lt                                   # imbalance ratio 10
    python -m experiments.cifar10_lt --config.data.imbalance_ratio=100 --workdir runs/cifar10_lt100

The train split keeps ``n_c = floor(n_max * ratio ** (-c / 9))`` images of class ``c`` (class 0,
airplane, the head; class 9, truck, the tail with ``n_max / ratio``), a seeded random subset of
each class: the exponential profile of Cao et al. 2019 (LDAM) and Cui et al. 2019. Validation and
test stay balanced, so the per-class test accuracies (and CWV, MCD, worst-class accuracy) show how
pruning treats the rare classes. With the full data (``max_per_class=5000``: 4,500 train images
a class before the profile) ratio 10 keeps 18,388 training images (4,500 ... 450) and ratio 100
11,165 (4,500 ... 45); the published CIFAR-10-LT (n_max 5,000, no val carved) has 20,431 and
12,406. ``ballot_jax.data.load_dataset("cifar10_lt", ...)``.

Data: as ``experiments.cifar10`` (``../shared/data/cifar10-jpeg.zip`` when it exists, else a
prepared TFDS ``cifar10``; or ``--config.data_dir``). The default workdir is ``runs/cifar10_lt``;
give each ratio its own ``--workdir`` (a workdir refuses a changed config).

CPU-sized defaults: the first 500 images of every class (450 train + 50 val; at ratio 10 train
keeps 450 ... 45 a class, 1,835 in all) and 500 test images a class, SmallCNN, 300 steps of 80
per level, one seed, sparsity 0.8. Realistic GPU sizes: ``--config.data.max_per_class=5000
--config.model=resnet18 --config.model_kwargs.norm=batch`` (or ``resnet50``), steps 5,000-20,000
of batch 128-512 per level, seeds 0,1,2, sparsities 0.5,0.8,0.9,0.95. Balanced sampling
(``train.balanced_sampling``, ``ballot.balanced_sampling``) draws the tail classes far more often
than their share; both are off by default, as everywhere.
"""

from __future__ import annotations

import sys

from ml_collections import config_dict

from experiments import run


def get_config():
    # batch 80: divisible by the 10 groups (balanced sampling) and 1/2/4/8/16 devices
    config = run.image_config("cifar10_lt", run.shared_data("cifar10-jpeg.zip"), batch_size=80)
    config.data.source = "auto"  # "raw" (class folders or zip) | "tfds" | "auto"
    config.data.imbalance_ratio = 10.0  # n_max / n_min of the train classes; 100 the other standard
    config.data.max_per_class = 500  # first files of every class, in train and in test; None: all
    config.data.image_size = config_dict.placeholder(int)  # None: the stored 32x32
    config.data.val_fraction = 0.1
    config.data.seed = 0  # the train/val split and the long-tail subset (fixed across seeds)
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
