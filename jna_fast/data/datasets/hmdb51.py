"""HMDB51: 51 classes, three official splits, videos under ``root/<class>/*.avi`` with the split files in
``testTrainMulti_7030_splits/`` (jna_fast/data/lists.py); flips keep the labels, as in TSN."""

from ..lists import parse_hmdb51
from .base import DatasetSpec, RAWFRAMES_NAMING, TSN_RECIPE, existing_root, register_dataset


@register_dataset("hmdb51")
class HMDB51(DatasetSpec):
    name = "hmdb51"
    reads = frozenset({"split", "frames_root"}) | RAWFRAMES_NAMING
    splits = (1, 2, 3)
    recipe = TSN_RECIPE

    def index(self, root, *, subset, split, list_file, frames_root, num_classes, issues):
        return parse_hmdb51(existing_root(root), split, subset, frames_root, issues)
