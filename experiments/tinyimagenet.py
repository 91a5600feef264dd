"""Tiny ImageNet with class-wise fairness: the groups are the 200 classes (a dataset of the paper).

    python -m experiments.tinyimagenet --config.data_dir=/data/tiny-imagenet-200.zip   # or the folder

Data: ``data_dir`` is required (Tiny ImageNet is not distributed with this project): the official
``tiny-imagenet-200`` download (http://cs231n.stanford.edu/tiny-imagenet-200.zip), as the zip read
in place, the ``tiny-imagenet-200/`` folder or its parent. Without it the run stops at once and
says so. The official test set has no labels, so its val set (50 images a class) is our test
split, and val is a class-stratified 10% of train (``ballot_jax.data.load_tinyimagenet``).

With 200 groups: balanced batches need ``batch_size`` divisible by 200, and Ballot's stratified
scoring batches hold ``per_group_batch`` examples of every class (4 here: 800 per batch).
CPU-sized defaults: the first 50 train images of every class (45 train + 5 val) and all 50 test
images, downscaled to 32x32, SmallCNN, 200 steps of 200 per level, one seed, sparsity 0.8; with
45 training images a class expect low accuracy, and per-class test accuracy rests on 50 images.

On a GPU (the authors' setting is a timm ResNet-50 trained from scratch, SGD lr 0.1, momentum 0.9,
weight decay 2e-4): all data and the stored 64x64 images, ResNet-50 with BatchNorm and the
ImageNet stem, e.g. ``--config.data.max_per_class=500 --config.data.image_size=64
--config.model=resnet50 --config.model_kwargs.norm=batch --config.model_kwargs.stem=imagenet
--config.train.steps=20000 --config.train.batch_size=200 --config.train.learning_rate=0.1
--config.train.weight_decay=2e-4 --config.train.schedule=step --config.seeds=0,1,2
--config.data.cache_dir=/tmp/tinyimagenet_cache`` (SmallCNN's ``channels``/``dense`` are then
ignored, with a warning). ``--config.model=resnet18`` is the cheaper alternative.
"""

from __future__ import annotations

import sys

from experiments import run


def get_config():
    # batch 200: divisible by the 200 groups (balanced sampling) and 1/2/4/8 devices
    config = run.image_config("tinyimagenet", "", batch_size=200)  # data_dir: required
    config.data.max_per_class = 50  # first files of every class in train and in test; None: all
    config.data.image_size = 32  # CPU-sized; None or 64 keeps the stored 64x64
    config.data.val_fraction = 0.1
    config.data.seed = 0  # the train/val split (fixed across training seeds)
    config.model_kwargs.dense = 256
    config.train.steps = 200
    config.train.rewind_step = 10
    if "ballot" in config:
        config.ballot.per_group_batch = 4
        config.ballot.score_batches = 4
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
