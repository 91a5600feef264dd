"""ResNet-18 (He et al. 2016, BasicBlock, stages (2, 2, 2, 2)).

``stem="cifar"``: 3x3 conv, stride 1, no max-pool (the usual CIFAR variant, for 32x32 inputs).
``stem="imagenet"``: 7x7 conv, stride 2, then 3x3 max-pool, stride 2 (for 64x64 and larger).
``width`` is the channel count of the first stage (64 in the paper); stages use
``width * (1, 2, 4, 8)``, so ``width=8`` or ``16`` gives a fast CPU model. Down-sampling shortcuts
are ``1x1 conv + norm``. With ``width=64``, the CIFAR stem and 10 classes the model has 11,173,962
parameters (the figure usually quoted for CIFAR ResNet-18), for ``norm`` "batch" or "group".
``norm`` defaults to "group"; see :mod:`ballot_jax.models._layers`. The classifier is a global
average pool followed by a ``Dense`` named ``"head"``.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ballot_jax.models._layers import check_norm, conv, normalize

STEMS = ("cifar", "imagenet")


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    norm: str = "group"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        residual = x
        y = conv(self.features, 3, self.stride, self.norm)(x)
        y = nn.relu(normalize(self.norm, y, train))
        y = conv(self.features, 3, 1, self.norm)(y)
        y = normalize(self.norm, y, train)
        if self.stride != 1 or x.shape[-1] != self.features:
            residual = conv(self.features, 1, self.stride, self.norm, name="shortcut_conv")(x)
            residual = normalize(self.norm, residual, train, name="shortcut_norm")
        return nn.relu(y + residual)


class ResNet18(nn.Module):
    num_classes: int
    width: int = 64
    stem: str = "cifar"
    norm: str = "group"
    stage_sizes: Sequence[int] = (2, 2, 2, 2)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        check_norm(self.norm)
        if self.stem == "cifar":
            x = conv(self.width, 3, 1, self.norm, name="stem_conv")(x)
            x = nn.relu(normalize(self.norm, x, train, name="stem_norm"))
        elif self.stem == "imagenet":
            x = conv(self.width, 7, 2, self.norm, name="stem_conv")(x)
            x = nn.relu(normalize(self.norm, x, train, name="stem_norm"))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        for i, n_blocks in enumerate(self.stage_sizes):
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                x = BasicBlock(self.width * 2**i, stride, self.norm, name=f"stage{i + 1}_block{j + 1}")(
                    x, train
                )
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="head")(x)
