"""Session 15: are the decoded CelebA images the same under two Pillow versions? Decodes the first 2,000
rows of ../shared/data/celeba-10k.zip (Blond_Hair) into CACHE_DIR and prints the Pillow version, the
train array's shape, a sha256 prefix of its bytes and Σ|x|.

    python docs/results/scripts/session15_decode_check.py /tmp/dc13                      # the venv's Pillow
    pip install --target /tmp/pil12 "pillow<13"
    PYTHONPATH=/tmp/pil12 python docs/results/scripts/session15_decode_check.py /tmp/dc12  # Pillow 12.x"""
import hashlib
import sys

import numpy as np
import PIL

from ballot_jax.data.celeba import load_celeba

data = load_celeba("/work/shared/data/celeba-10k.zip", target="Blond_Hair", max_examples=2000, cache_dir=sys.argv[1])
x = np.ascontiguousarray(data.train.x)
print(PIL.__version__, x.shape, hashlib.sha256(x.tobytes()).hexdigest()[:16], float(np.abs(x).sum()))
