"""MobileNetV2 (Sandler et al. 2018): inverted residual blocks with linear bottlenecks.

Stages (expansion t, channels c, repeats n, stride s), as in the paper:
(1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1), a 32-channel stem
and a 1280-channel 1x1 conv before global average pooling and a ``Dense`` named ``"head"``.
Residual connections are identities, used only when stride is 1 and channels match.

``width`` is the usual float multiplier (channels rounded to multiples of 8; the last conv keeps
1280 channels for ``width <= 1``). ``cifar_strides=True`` (the default) makes the stem and the
first 24-channel stage stride 1 instead of 2, so a 32x32 input ends on a 4x4 map rather than 1x1;
set it False for the ImageNet layout (224x224, or 64x64 and up). Strides change no parameter
count: with ``width=1`` and 10 classes the model has 2,236,682 parameters (torchvision's
mobilenet_v2 with a 10-way classifier) for ``norm`` "batch"/"group".
``norm`` defaults to "group"; see :mod:`ballot_jax.models._layers`. Activations are ReLU6.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from ballot_jax.models._layers import check_norm, conv, normalize

# (expansion, channels, repeats, stride)
MOBILENET_V2_CFG = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never going below 90% of ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class InvertedResidual(nn.Module):
    features: int
    stride: int
    expansion: int
    norm: str = "group"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        in_ch = x.shape[-1]
        hidden = in_ch * self.expansion
        y = x
        if self.expansion != 1:
            y = conv(hidden, 1, 1, self.norm, name="expand_conv")(y)
            y = nn.relu6(normalize(self.norm, y, train, name="expand_norm"))
        y = conv(hidden, 3, self.stride, self.norm, name="depthwise_conv", groups=hidden)(y)
        y = nn.relu6(normalize(self.norm, y, train, name="depthwise_norm"))
        y = conv(self.features, 1, 1, self.norm, name="project_conv")(y)
        y = normalize(self.norm, y, train, name="project_norm")
        if self.stride == 1 and in_ch == self.features:
            y = y + x
        return y


class MobileNetV2(nn.Module):
    num_classes: int
    width: float = 1.0
    norm: str = "group"
    cifar_strides: bool = True
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        check_norm(self.norm)
        stem_stride = 1 if self.cifar_strides else 2
        x = conv(make_divisible(32 * self.width), 3, stem_stride, self.norm, name="stem_conv")(x)
        x = nn.relu6(normalize(self.norm, x, train, name="stem_norm"))
        for i, (t, c, n, s) in enumerate(MOBILENET_V2_CFG):
            if self.cifar_strides and i == 1:
                s = 1
            out = make_divisible(c * self.width)
            for j in range(n):
                x = InvertedResidual(out, s if j == 0 else 1, t, self.norm, name=f"stage{i + 1}_block{j + 1}")(
                    x, train
                )
        last = make_divisible(1280 * max(1.0, self.width))
        x = conv(last, 1, 1, self.norm, name="last_conv")(x)
        x = nn.relu6(normalize(self.norm, x, train, name="last_norm"))
        x = jnp.mean(x, axis=(1, 2))
        if self.dropout > 0:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)
