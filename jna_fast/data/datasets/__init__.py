"""The dataset kinds, one spec module each (docs/design.md §3.1): what a kind knows about itself (the data options
it reads, its split rules, its own options and its default recipe) lives in its spec, registered by name in
:data:`DATASETS`; a new kind is one new module here. Standard library only at import (no PyAV, no OpenCV)."""

from __future__ import annotations

from ...registry import import_submodules
from .base import DATASETS, DatasetSpec, TSN_RECIPE, register_dataset

import_submodules(__name__, __path__)

__all__ = ["DATASETS", "DatasetSpec", "TSN_RECIPE", "register_dataset", "dataset_spec", "trainable_kinds"]


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset kind ``name`` (an error lists the known kinds)."""
    return DATASETS[name]()


def trainable_kinds() -> tuple[str, ...]:
    """The kinds a model trains and is evaluated on (not the single video that prediction reads)."""
    return tuple(name for name in DATASETS.names() if DATASETS[name].trainable)
