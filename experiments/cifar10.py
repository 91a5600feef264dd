"""CIFAR-10 with class-wise fairness: the groups are the 10 classes.

    python -m experiments.cifar10
    python -m experiments.cifar10 --config.data.max_per_class=5000 --config.train.steps=3000

Data: ``data_dir`` defaults to ``../shared/data/cifar10-jpeg.zip`` beside the checkout when it
exists (``cifar10/{train,test}/<class>/*.jpg``, read in place); otherwise it is empty and a
prepared TFDS ``cifar10`` is used (never downloaded). Set ``--config.data_dir`` to an image folder,
a zip, or a TFDS data_dir.

CPU-sized defaults: the first 500 images of every class in train (450 train + 50 val) and in
test, SmallCNN, 300 steps of 80 per level, one seed, sparsity 0.8. Realistic GPU sizes: the full dataset
(``--config.data.max_per_class=5000``), ``--config.model=resnet18`` with
``--config.model_kwargs.norm=batch`` (SmallCNN's other kwargs are ignored), steps 5,000-20,000 of
batch 128-512 per level, seeds 0,1,2, sparsities 0.5,0.8,0.9,0.95.
"""

from __future__ import annotations

import sys

from ml_collections import config_dict

from experiments import run


def get_config():
    # batch 80: divisible by the 10 groups (balanced sampling) and 1/2/4/8/16 devices
    config = run.image_config("cifar10", run.shared_data("cifar10-jpeg.zip"), batch_size=80)
    config.data.source = "auto"  # "raw" (class folders or zip) | "tfds" | "auto"
    config.data.max_per_class = 500  # first files of every class, in train and in test; None: all
    config.data.image_size = config_dict.placeholder(int)  # None: the stored 32x32
    config.data.val_fraction = 0.1
    config.data.seed = 0  # the train/val split (fixed across training seeds)
    # 300 steps a level: ~5 epochs of 4,500 images; GPU: thousands
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
