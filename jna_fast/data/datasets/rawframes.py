"""Rawframes folders listed in list files (mmaction2's ``folder frames label``), frames and flow both read under
``root`` (jna_fast/data/rawframes.py states the naming conventions)."""

from ..lists import parse_rawframes_list
from .base import DatasetSpec, RAWFRAMES_NAMING, TSN_RECIPE, existing_root, list_path, register_dataset


@register_dataset("rawframes")
class Rawframes(DatasetSpec):
    name = "rawframes"
    reads = frozenset({"train_list", "val_list", "num_classes"}) | RAWFRAMES_NAMING
    recipe = TSN_RECIPE
    needs_lists = True
    stores_videos = False

    def index(self, root, *, subset, split, list_file, frames_root, num_classes, issues):
        root = existing_root(root)
        return parse_rawframes_list(root, list_path(root, list_file, self.name), issues, num_classes)

    def unused_reason(self, name, data):
        if name == "frames_root":
            return "does not apply to --dataset rawframes, whose frames and flow are read under --root"
        return super().unused_reason(name, data)
