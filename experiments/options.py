"""The method registry, read off the method dataclasses: registry name -> factory(**options) -> Method.

``METHODS`` maps every name of ``ballot_jax.methods.METHODS`` to a factory that takes keyword
options; :func:`method_options` lists a method's configurable options (the per-method sub-dicts of
the experiment config), :func:`build_method` builds a method from them (routing flattened options
into nested dataclass fields) and :func:`make_method` builds one from an experiment config.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

from ml_collections import config_dict

from ballot_jax.methods import METHODS as METHOD_CLASSES


def _factory(name: str) -> Callable[..., Any]:
    def factory(**options):
        return build_method(METHOD_CLASSES[name], options)

    factory.__name__ = f"make_{name}"
    factory.__doc__ = f"The '{name}' method, built from keyword options (see method_options)."
    return factory


METHODS: dict[str, Callable[..., Any]] = {name: _factory(name) for name in METHOD_CLASSES}

def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


_SIMPLE = (bool, int, float, str)
_TYPE_NAMES = {"bool": bool, "int": int, "float": float, "str": str}


def _option_value(f: dataclasses.Field, default: Any) -> Any:
    """A config value for a method field's default, or MISSING when it is not configurable."""
    if isinstance(default, _SIMPLE):
        return default
    if isinstance(default, tuple) and all(isinstance(v, _SIMPLE) for v in default):
        return default
    if default is None:  # Optional[...] field: a typed placeholder, overridable from the CLI
        names = re.findall(r"\b(bool|int|float|str)\b", str(f.type))
        if names:
            return config_dict.placeholder(_TYPE_NAMES[names[0]])
    return dataclasses.MISSING


def method_options(cls: type) -> config_dict.ConfigDict:
    """The configurable options of a method dataclass, as a flat ConfigDict of its defaults.

    Simple fields (bool/int/float/str, tuples of them, Optional ones as typed placeholders) become
    options; the fields of a nested dataclass default (e.g. ``Ballot.score``, a ``BallotConfig``)
    are flattened into the same dict. ``name`` and ``fraction`` (a top-level option) are left out.
    """
    options: dict[str, Any] = {}

    def add(field_name: str, value: Any, owner: str) -> None:
        if field_name in options:
            raise ValueError(f"{cls.__name__}: option {field_name!r} ({owner}) is ambiguous")
        options[field_name] = value

    for f in dataclasses.fields(cls):
        if f.name in ("name", "fraction"):
            continue
        default = _field_default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            for g in dataclasses.fields(default):
                value = _option_value(g, getattr(default, g.name))
                if value is not dataclasses.MISSING:
                    add(g.name, value, f"{f.name}.{g.name}")
            continue
        value = _option_value(f, default)
        if value is not dataclasses.MISSING:
            add(f.name, value, f.name)
    return config_dict.ConfigDict(options)


def build_method(cls: type, options: dict[str, Any]):
    """``cls(**options)``, routing flattened options into nested dataclass fields (see
    :func:`method_options`). ``fraction`` is passed only to methods that have that field."""
    options = dict(options)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    fraction = options.pop("fraction", None)
    if fraction is not None and "fraction" in names:
        kwargs["fraction"] = fraction
    for f in dataclasses.fields(cls):
        default = _field_default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            sub = {g.name: options.pop(g.name) for g in dataclasses.fields(default) if g.name in options}
            if sub:
                kwargs[f.name] = dataclasses.replace(default, **sub)
        elif f.name in options and f.name not in ("name", "fraction"):
            kwargs[f.name] = options.pop(f.name)
    if options:
        raise ValueError(f"unknown options for {cls.__name__}: {sorted(options)}")
    return cls(**kwargs)


def make_method(name: str, config: config_dict.ConfigDict):
    """The method ``name`` with its options from ``config[name]`` and ``config.fraction``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(METHODS)}")
    options = config[name].to_dict() if name in config else {}
    return METHODS[name](fraction=float(config.fraction), **options)
