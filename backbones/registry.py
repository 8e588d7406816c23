"""One registry and one ``create_backbone(name, **kw)`` for every backbone (timm style)."""
from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, Callable] = {}
_DOCS: dict[str, str] = {}


def register(name: str, doc: str = ""):
    def wrap(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = factory
        _DOCS[name] = doc or (factory.__doc__ or "").strip().splitlines()[0]
        return factory
    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def describe_backbones() -> dict[str, str]:
    return {n: _DOCS[n] for n in list_backbones()}


def create_backbone(name: str, **kwargs):
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}") from None
    model = factory(**kwargs)
    model.name = name
    return model
