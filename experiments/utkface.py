"""UTKFace: predict gender, groups by race (5 groups), from images named age_gender_race_*.jpg.

    python -m experiments.utkface --config.data_dir=/data/UTKFace            # folder or .zip
    python -m experiments.utkface --config.data_dir=... --config.data.target=age_bucket \\
        --config.data.sensitive=gender

Data: ``data_dir`` defaults to ``../shared/data/utkface.zip`` or ``../shared/data/UTKFace`` when
one exists; otherwise pass it (UTKFace is not distributed with this project). Attributes:
``gender`` (2), ``race`` (5), ``age_bucket`` (4). A binary target with a binary sensitive attribute
also reports DP / EOpp / EOdds differences.

CPU-sized defaults: the first 10,000 images at
32x32, SmallCNN, 300 steps of 80 per level, one seed, sparsity 0.8. Realistic GPU sizes: all
~23,700 images at 64x64 or more, ResNet-18 (``norm=batch``), steps 5,000+ of batch 256 per level,
seeds 0,1,2.
"""

from __future__ import annotations

import sys

from experiments import run


def get_config():
    # batch 80: divisible by the 5 race groups and 1/2/4/8/16 devices
    config = run.image_config("utkface", run.shared_data("utkface.zip") or run.shared_data("UTKFace"), batch_size=80)
    config.data.target = "gender"
    config.data.sensitive = "race"
    config.data.image_size = 32
    config.data.val_fraction = 0.1
    config.data.test_fraction = 0.2
    config.data.max_examples = 10000  # the first valid files in sorted order; None: all
    config.data.seed = 0
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
