"""Flax models for ballot_jax, and their adapter to the engine's ``Model(init, apply)``.

``get_model(name, num_classes, **kwargs)`` builds a registered module and wraps it with
:func:`as_engine_model`; ``get_module`` returns the bare Flax module. Registered names:
``"mlp"``, ``"small_cnn"``, ``"resnet18"``, ``"resnet50"``, ``"vgg16"``, ``"mobilenet_v2"``.
Keyword arguments go to the module's constructor (e.g. ``width``, ``norm``, ``stem``). See
:mod:`ballot_jax.models._layers` for the normalisation options and the parameter-layout conventions.
"""

from __future__ import annotations

from typing import Any

from flax import linen as nn

from ballot_jax.engine.model import Model
from ballot_jax.models._layers import NORMS
from ballot_jax.models.adapter import as_engine_model
from ballot_jax.models.mobilenet import MobileNetV2
from ballot_jax.models.resnet import ResNet18, ResNet50
from ballot_jax.models.small import MLP, SmallCNN
from ballot_jax.models.vgg import VGG16

MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "small_cnn": SmallCNN,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "vgg16": VGG16,
    "mobilenet_v2": MobileNetV2,
}


def get_module(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """The registered Flax module ``name`` with ``num_classes`` outputs."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}") from None
    return cls(num_classes=num_classes, **kwargs)


def get_model(name: str, num_classes: int, **kwargs: Any) -> Model:
    """The registered model ``name`` as an engine ``Model(init, apply)``."""
    return as_engine_model(get_module(name, num_classes, **kwargs))


__all__ = [
    "MLP",
    "MODELS",
    "NORMS",
    "MobileNetV2",
    "ResNet18",
    "ResNet50",
    "SmallCNN",
    "VGG16",
    "as_engine_model",
    "get_model",
    "get_module",
]
