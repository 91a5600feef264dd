"""CIFAR-100 with class-wise fairness: the groups are the 100 fine classes.

    python -m experiments.cifar100 --config.data_dir=/data/cifar100          # class folders / zip
    python -m experiments.cifar100 --config.data.source=tfds --config.data_dir=~/tensorflow_datasets

Data: ``data_dir`` defaults to ``../shared/data/cifar100-jpeg.zip`` or ``../shared/data/cifar100``
when one exists; otherwise it is empty and a prepared TFDS ``cifar100`` is used (never downloaded).

With 100 groups: balanced batches need ``batch_size`` divisible by 100, and Ballot's stratified
scoring batches hold ``per_group_batch`` examples of every class (8 here: 800 per batch).
CPU-sized defaults: 100 images per class,
SmallCNN, 200 steps of 200 per level, one seed, sparsity 0.8; per-class test accuracy rests on
only 100 images, so CWV/MCD are noisy. Realistic GPU sizes: all data (``max_per_class=500``),
ResNet-18 (``norm=batch``), steps 10,000+ of batch 200-500 per level, seeds 0,1,2.
"""

from __future__ import annotations

import sys

from ml_collections import config_dict

from experiments import run


def get_config():
    # batch 200: divisible by the 100 groups (balanced sampling) and 1/2/4/8 devices
    config = run.image_config("cifar100", run.shared_data("cifar100-jpeg.zip") or run.shared_data("cifar100"), batch_size=200)
    config.data.source = "auto"
    config.data.max_per_class = 100  # first files of every class, in train and in test; None: all
    config.data.image_size = config_dict.placeholder(int)
    config.data.val_fraction = 0.1
    config.data.seed = 0
    config.model_kwargs.dense = 256
    config.train.steps = 200
    config.train.rewind_step = 10
    if "ballot" in config:
        config.ballot.per_group_batch = 8
        config.ballot.score_batches = 4
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
