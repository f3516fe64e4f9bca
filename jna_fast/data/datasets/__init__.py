"""The dataset kinds, one spec module each (docs/design.md §6.7): what a kind knows about itself (the data options
it reads, its own options, its roots, its index, its split rules, its flip policy, its salient windows, how it is
made, the short side of its frames, its default recipe) lives in its spec, registered by name in :data:`DATASETS`;
a new kind is one new module here. Light at import (no PyAV, no OpenCV): what needs them loads on first use."""

from __future__ import annotations

import os
from pathlib import Path

from ...io.errors import IssueLog
from ...registry import import_submodules
from ..lists import SUBSETS, DatasetIndex
from .base import DATASETS, TSN_RECIPE, TSN_SHORT_SIDE, DatasetSpec, cache_root, register_dataset

import_submodules(__name__, __path__)

KINDS = tuple(DATASETS.names())
"""The registered dataset kinds (``kind`` of :func:`load_index` and ``build_loader``)."""

__all__ = ["DATASETS", "DatasetSpec", "KINDS", "TSN_RECIPE", "TSN_SHORT_SIDE", "cache_root", "dataset_spec",
           "load_index", "register_dataset", "trainable_kinds"]


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset kind ``name`` (an error lists the known kinds)."""
    return DATASETS[name]()


def trainable_kinds() -> tuple[str, ...]:
    """The kinds a model trains and is evaluated on (not the single video that prediction reads)."""
    return tuple(name for name in DATASETS.names() if DATASETS[name].trainable)


def load_index(kind: str, root: str | os.PathLike, *, split: int = 1, subset: str = "train",
               list_file: str | os.PathLike | None = None, frames_root: str | os.PathLike | None = None,
               num_classes: int | None = None, issues: IssueLog | None = None) -> DatasetIndex:
    """The records of one subset of a dataset of kind ``kind`` (its spec's :meth:`DatasetSpec.index`; the layouts:
    jna_fast/data/lists.py).

    Args:
        kind: one of :data:`KINDS`.
        root: the dataset's root folder (kind="video": the video file).
        split: the official split, for kinds that have them (UCF101, HMDB51: 1, 2 or 3).
        subset: "train" or "test".
        list_file: a list file (kinds that read lists; relative paths are taken under ``root``); replaces
            split/subset.
        frames_root: where the rawframes of video datasets live.
        num_classes: bounds the lists' labels (None: no bound).
        issues: applies on_error to bad list lines (None: raise).

    Returns:
        The subset's video records and class names.

    Raises:
        ValueError: an unknown ``kind`` or ``subset``, or a ``split`` the kind does not have.
        DataError: a missing root, list or video, or a bad list line (the message names the file and line).
    """
    if kind not in DATASETS.names():
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    return dataset_spec(kind).index(Path(root), subset=subset, split=split, list_file=list_file,
                                    frames_root=None if frames_root is None else Path(frames_root),
                                    num_classes=num_classes, issues=issues if issues is not None else IssueLog("raise"))
