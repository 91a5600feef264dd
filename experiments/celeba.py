"""CelebA: a binary face attribute (default Smiling) with the sensitive attribute Male as groups.

    python -m experiments.celeba                                  # raw zip from ../shared/data
    python -m experiments.celeba --config.data.target=Blond_Hair  # the strongly skewed target
    python -m experiments.celeba --config.data_dir=/data/celeba   # raw folder, or a TFDS data_dir
    python -m experiments.celeba --config.data.source=tfds --config.data_dir=~/tensorflow_datasets

Data: ``data_dir`` defaults to ``../shared/data/celeba-10k.zip`` beside the checkout when it
exists (the raw CelebA layout, read in place); otherwise it is empty and the loader looks for a
prepared TFDS ``celeb_a`` (it never downloads). Binary target and attribute, so the tables also
report demographic parity / equal opportunity / equalized odds differences. Ballot runs with the
library's one default, as on every dataset (docs/method.md 5.5-5.6).

The defaults are CPU-sized: 32x32 images, SmallCNN, 300 steps of 64 per level (SGD, lr 0.05 after a
30-step linear warm-up, cosine decay: ``train.warmup_steps``), one seed, sparsity 0.8. All six methods
then take about 43 x 300 = 12,900 optimizer steps (see README.md): roughly 10-15 minutes on an idle
2-core CPU, up to ~35 minutes on a busy one (we measured ~150 ms a step under heavy load). On a GPU
use the full dataset and realistic sizes, e.g. ``--config.model=resnet18 --config.model_kwargs.norm=batch``
(SmallCNN's ``channels``/``dense`` are then ignored, with a warning), image_size 64,
``--config.train.steps=5000 --config.train.batch_size=256 --config.seeds=0,1,2
--config.sparsities=0.5,0.8,0.9``.
"""

from __future__ import annotations

import sys

from ml_collections import config_dict

from experiments import run


def get_config():
    config = run.image_config("celeba", run.shared_data("celeba-10k.zip"), batch_size=64)
    config.data.source = "auto"  # "raw" (folder or zip) | "tfds" | "auto": raw if data_dir looks raw
    config.data.target = "Smiling"  # or Blond_Hair (male+blond is 81 of 10,000: a hard minority)
    config.data.sensitive = "Male"
    config.data.groups = "attribute"  # "attribute": 2 groups by Male | "cell": 4 (target, Male) cells
    config.data.image_size = 32
    config.data.split = (0.1, 0.2)  # raw files without a partition file: (val, test) fractions
    config.data.max_examples = config_dict.placeholder(int)  # None: all rows
    # 300 steps of 64 a level: ~2.7 epochs of 7,200 training faces; GPU: thousands
    # A 30-step linear warm-up (10% of the 300 steps; scale it with train.steps): without it the dense
    # net collapsed to the majority class at some seeds (Blond_Hair 9, Wavy_Hair 7; docs/results.md A.2zh)
    config.train.schedule = "warmup_cosine"
    config.train.warmup_steps = 30
    return config


if __name__ == "__main__":
    run.main(sys.argv, get_config)
