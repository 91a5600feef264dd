"""ResNet-18 (He et al. 2016, BasicBlock, stages (2, 2, 2, 2)) and ResNet-50 (Bottleneck, (3, 4, 6, 3)).

``stem="cifar"``: 3x3 conv, stride 1, no max-pool (the usual CIFAR variant, for 32x32 inputs).
``stem="imagenet"``: 7x7 conv, stride 2, then 3x3 max-pool, stride 2 (for 64x64 and larger).
``width`` is the channel count of the first stage (64 in the paper); stages use
``width * (1, 2, 4, 8)``, so ``width=8`` or ``16`` gives a fast CPU model. Down-sampling shortcuts
are ``1x1 conv + norm``. With ``width=64``, the CIFAR stem and 10 classes the model has 11,173,962
parameters (the figure usually quoted for CIFAR ResNet-18), for ``norm`` "batch" or "group".
``norm`` defaults to "group"; see :mod:`ballot_jax.models._layers`. The classifier is a global
average pool followed by a ``Dense`` named ``"head"``. ``conv_impl`` ("xla", the default, or
"winograd") chooses how the 3x3 stride-1 convolutions compute (:mod:`ballot_jax.models.winograd`: the
same parameters, a different rounding; slower than the default since :mod:`ballot_jax.compiler`).

ResNet-50 (``ResNet50``): Bottleneck blocks ``1x1 -> 3x3 (stride) -> 1x1 (4x expansion)``, stages
(3, 4, 6, 3), the stride on the 3x3 conv ("v1.5", as in torchvision and timm), the same stems,
``width``, ``norm`` and shortcut convention. Stage ``i`` has bottleneck width ``width * 2**i`` and
``4 * width * 2**i`` output channels. With ``width=64``, 10 classes and ``norm`` "batch" or "group"
it has 23,528,522 parameters with the ImageNet stem (torchvision's resnet50 with a 10-way head) and
23,520,842 with the CIFAR stem; 53 conv kernels + the head.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ballot_jax.models._layers import check_conv, check_norm, conv, normalize

STEMS = ("cifar", "imagenet")


def stem(x: jnp.ndarray, kind: str, width: int, norm: str, train: bool, conv_impl: str = "xla") -> jnp.ndarray:
    """The input stem (see the module docstring); call from inside an ``nn.compact`` method.

    Its layers are named ``stem_conv`` and ``stem_norm`` in the calling module.
    """
    if kind == "cifar":
        x = conv(width, 3, 1, norm, name="stem_conv", impl=conv_impl)(x)
        x = nn.relu(normalize(norm, x, train, name="stem_norm"))
    elif kind == "imagenet":
        x = conv(width, 7, 2, norm, name="stem_conv")(x)
        x = nn.relu(normalize(norm, x, train, name="stem_norm"))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
        raise ValueError(f"stem must be one of {STEMS}, got {kind!r}")
    return x


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    norm: str = "group"
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        residual = x
        y = conv(self.features, 3, self.stride, self.norm, impl=self.conv_impl)(x)
        y = nn.relu(normalize(self.norm, y, train))
        y = conv(self.features, 3, 1, self.norm, impl=self.conv_impl)(y)
        y = normalize(self.norm, y, train)
        if self.stride != 1 or x.shape[-1] != self.features:
            residual = conv(self.features, 1, self.stride, self.norm, name="shortcut_conv")(x)
            residual = normalize(self.norm, residual, train, name="shortcut_norm")
        return nn.relu(y + residual)


def _resnet(model: nn.Module, block: type, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """The ResNet body shared by ResNet-18 and ResNet-50, called inside ``model``'s compact
    ``__call__``: stem, ``model.stage_sizes`` stages of ``block`` (stride 2 at the first block of
    every stage but the first, width doubling per stage), global average pool, the "head"."""
    check_norm(model.norm)
    check_conv(model.conv_impl)
    x = stem(x, model.stem, model.width, model.norm, train, model.conv_impl)
    for i, n_blocks in enumerate(model.stage_sizes):
        for j in range(n_blocks):
            stride = 2 if (i > 0 and j == 0) else 1
            x = block(model.width * 2**i, stride, model.norm, conv_impl=model.conv_impl,
                      name=f"stage{i + 1}_block{j + 1}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(model.num_classes, name="head")(x)


class ResNet18(nn.Module):
    num_classes: int
    width: int = 64
    stem: str = "cifar"
    norm: str = "group"
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        return _resnet(self, BasicBlock, x, train)


class Bottleneck(nn.Module):
    """``1x1 (features) -> 3x3 (features, stride) -> 1x1 (expansion * features)`` + shortcut."""

    features: int
    stride: int = 1
    norm: str = "group"
    expansion: int = 4
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        out_features = self.features * self.expansion
        residual = x
        y = conv(self.features, 1, 1, self.norm)(x)
        y = nn.relu(normalize(self.norm, y, train))
        y = conv(self.features, 3, self.stride, self.norm, impl=self.conv_impl)(y)
        y = nn.relu(normalize(self.norm, y, train))
        y = conv(out_features, 1, 1, self.norm)(y)
        y = normalize(self.norm, y, train)
        if self.stride != 1 or x.shape[-1] != out_features:
            residual = conv(out_features, 1, self.stride, self.norm, name="shortcut_conv")(x)
            residual = normalize(self.norm, residual, train, name="shortcut_norm")
        return nn.relu(y + residual)


class ResNet50(nn.Module):
    """ResNet-50 (Bottleneck, stages (3, 4, 6, 3)); options as ``ResNet18`` (module docstring)."""

    num_classes: int
    width: int = 64
    stem: str = "cifar"
    norm: str = "group"
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        return _resnet(self, Bottleneck, x, train)
