"""Videos listed in list files of one's own (``path label`` per line; jna_fast/data/lists.py), under ``root``."""

from ..lists import parse_video_list
from .base import DatasetSpec, RAWFRAMES_NAMING, TSN_RECIPE, existing_root, list_path, register_dataset


@register_dataset("videos")
class Videos(DatasetSpec):
    name = "videos"
    reads = frozenset({"train_list", "val_list", "num_classes", "frames_root"}) | RAWFRAMES_NAMING
    recipe = TSN_RECIPE
    needs_lists = True

    def index(self, root, *, subset, split, list_file, frames_root, num_classes, issues):
        root = existing_root(root)
        return parse_video_list(root, list_path(root, list_file, self.name), frames_root, issues, num_classes)
