"""Videos listed in list files of one's own (``path label`` per line; jna_fast/data/lists.py), under ``root``."""

from .base import DatasetSpec, RAWFRAMES_NAMING, TSN_RECIPE, register_dataset


@register_dataset("videos")
class Videos(DatasetSpec):
    name = "videos"
    reads = frozenset({"train_list", "val_list", "num_classes", "frames_root"}) | RAWFRAMES_NAMING
    recipe = TSN_RECIPE
    needs_lists = True
