"""Components chosen by name: a registry per kind of component, filled by the modules that define them.

A component registers itself where it is defined (``@registry.register("name")``), so that adding one is one new
module; a lookup of an unknown name lists the known ones. Each registered component declares its options as a
dataclass of :func:`jna_fast.options.option` fields in its ``Options`` attribute (``NoOptions`` when it has none).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable

from .options import NoOptions


class Registry:
    """Named components of one kind (``kind``: what an error calls them, such as "model.fusion")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, object] = {}

    def register(self, name: str) -> Callable:
        """A decorator registering a class (or factory) under ``name``; its ``Options`` must be a dataclass."""
        def add(component):
            if name in self._entries:
                raise ValueError(f"{self.kind}: {name!r} is registered twice")
            options = getattr(component, "Options", NoOptions)
            if not dataclasses.is_dataclass(options):
                raise TypeError(f"{self.kind} {name!r}: Options must be a dataclass, got {options!r}")
            self._entries[name] = component
            return component
        return add

    def unregister(self, name: str) -> None:
        """Removes ``name`` (for tests that register a component of their own)."""
        if name not in self._entries:
            raise ValueError(f"{self.kind}: {name!r} is not registered")
        del self._entries[name]

    def __getitem__(self, name: str):
        if name not in self._entries:
            raise ValueError(f"{self.kind}: unknown name {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def options(self, name: str) -> type:
        """The Options dataclass of component ``name``."""
        return getattr(self[name], "Options", NoOptions)


def import_submodules(package_name: str, package_path) -> None:
    """Import every module of a package, so that the components they define register themselves: a new
    component is a new module, with no list to edit."""
    for module in pkgutil.iter_modules(package_path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")
