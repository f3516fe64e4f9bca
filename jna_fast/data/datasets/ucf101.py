"""UCF101: 101 classes, three official splits, videos under ``root`` (``UCF-101/<class>/*.avi``) with the split
lists in ``ucfTrainTestlist/`` (jna_fast/data/lists.py); flips keep the labels, as in TSN."""

from ..lists import parse_ucf101
from .base import DatasetSpec, RAWFRAMES_NAMING, TSN_RECIPE, existing_root, register_dataset


@register_dataset("ucf101")
class UCF101(DatasetSpec):
    name = "ucf101"
    reads = frozenset({"split", "frames_root"}) | RAWFRAMES_NAMING
    splits = (1, 2, 3)
    recipe = TSN_RECIPE

    def index(self, root, *, subset, split, list_file, frames_root, num_classes, issues):
        return parse_ucf101(existing_root(root), split, subset, frames_root, issues)
