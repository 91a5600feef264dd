"""VGG-16, CIFAR style (configuration "D" conv stacks, small classifier).

Thirteen ``conv3x3 -> norm -> relu`` layers in five stacks of widths
``width * (1, 1 | 2, 2 | 4, 4, 4 | 8, 8, 8 | 8, 8, 8)``, each stack ending in a 2x2 max-pool; then a
global average pool (a no-op on the 1x1 map a 32x32 input leaves, and what lets 8x8 / 16x16 inputs
work), optional hidden dense layers ``classifier`` (default none), and a ``Dense`` named ``"head"``.
``width`` is the first stack's channel count (64 in the paper); use 8 or 16 for CPU runs.

With ``width=64`` and 10 classes the default model (single-layer classifier, as in the CIFAR VGG-16
of Frankle & Carbin's lottery-ticket experiments) has 14,710,464 conv-kernel weights, 5,130 head
parameters and 8,448 norm scales/offsets: 14,724,042 in all for ``norm`` "batch"/"group"
(14,719,818 with ``norm="none"``, where each conv has a bias instead of a norm layer).
``norm`` defaults to "group"; see :mod:`ballot_jax.models._layers`. ``conv_impl`` as in ResNet-18
(:mod:`ballot_jax.models.resnet`).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ballot_jax.models._layers import check_conv, check_norm, conv, max_pool_2x2, normalize

# Channel multipliers of width; "M" = 2x2 max-pool.
VGG16_CFG = (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M")


class VGG16(nn.Module):
    num_classes: int
    width: int = 64
    norm: str = "group"
    classifier: Sequence[int] = ()
    dropout: float = 0.0
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        check_norm(self.norm)
        check_conv(self.conv_impl)
        i = 0
        for v in VGG16_CFG:
            if v == "M":
                x = max_pool_2x2(x)
            else:
                i += 1
                x = conv(self.width * v, 3, 1, self.norm, name=f"conv{i}", impl=self.conv_impl)(x)
                x = nn.relu(normalize(self.norm, x, train, name=f"norm{i}"))
        x = jnp.mean(x, axis=(1, 2))
        for k, h in enumerate(self.classifier):
            x = nn.relu(nn.Dense(h, name=f"fc{k + 1}")(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)
