"""Small, fast models for CPU experiments and tests: an MLP and a small CNN.

``MLP`` flattens its input, so it serves tabular ``[N, D]`` data and images alike. ``SmallCNN`` is
a few ``conv3x3 -> norm -> relu -> maxpool2x2`` blocks followed by one hidden dense layer; it is
meant for 8x8 to 64x64 inputs. Its ``norm`` defaults to ``"none"`` (no state, fastest); see
:mod:`ballot_jax.models._layers` for what ``"group"`` and ``"batch"`` do. The final layer is a
``Dense`` named ``"head"``.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ballot_jax.models._layers import check_norm, conv, max_pool_2x2, normalize


class MLP(nn.Module):
    """``flatten -> [Dense -> relu -> dropout] * len(hidden) -> Dense(num_classes, name='head')``."""

    num_classes: int
    hidden: Sequence[int] = (128, 128)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)


class SmallCNN(nn.Module):
    """``[conv3x3 -> norm -> relu -> maxpool2x2] * len(channels) -> flatten -> Dense(dense) -> relu
    -> dropout -> Dense(num_classes, name='head')``. Pools use SAME padding, so odd or tiny spatial
    sizes never collapse to zero."""

    num_classes: int
    channels: Sequence[int] = (32, 64)
    dense: int = 128
    norm: str = "none"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        check_norm(self.norm)
        for c in self.channels:
            x = conv(c, 3, 1, self.norm)(x)
            x = nn.relu(normalize(self.norm, x, train))
            x = max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.dense)(x))
        if self.dropout > 0:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)
