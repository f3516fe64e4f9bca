"""The model's parts, chosen by name: one registry per kind of part (docs/design.md §2.7).

``register(kind, name)`` is the decorator a part's module applies to its class; ``lookup(kind, name)`` returns the
class and lists the known names in its error. The parts live in :mod:`jna_fast.models.parts`, one module each;
importing :mod:`jna_fast.models` registers them all.
"""

from __future__ import annotations

from ..registry import Registry

# The kinds of part, in the order the network applies them.
KINDS = ("backbone", "sharing", "spatial_pooling", "temporal_pooling", "fusion")
REGISTRIES = {kind: Registry(f"model.{kind}") for kind in KINDS}


def _registry(kind: str) -> Registry:
    if kind not in REGISTRIES:
        raise ValueError(f"unknown kind of model part {kind!r}; known: {', '.join(KINDS)}")
    return REGISTRIES[kind]


def register(kind: str, name: str):
    """Decorator: register a part class under ``kind`` and ``name``."""
    return _registry(kind).register(name)


def lookup(kind: str, name: str):
    """The part class registered under ``kind`` and ``name``."""
    return _registry(kind)[name]


def names(kind: str) -> tuple[str, ...]:
    return _registry(kind).names()


def options(kind: str, name: str) -> type:
    """The Options dataclass of part ``name`` of ``kind``."""
    return _registry(kind).options(name)
