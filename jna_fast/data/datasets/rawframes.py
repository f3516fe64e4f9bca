"""Rawframes folders listed in list files (mmaction2's ``folder frames label``), frames and flow both read under
``root`` (jna_fast/data/rawframes.py states the naming conventions)."""

from .base import DatasetSpec, RAWFRAMES_NAMING, TSN_RECIPE, register_dataset


@register_dataset("rawframes")
class Rawframes(DatasetSpec):
    name = "rawframes"
    reads = frozenset({"train_list", "val_list", "num_classes"}) | RAWFRAMES_NAMING
    recipe = TSN_RECIPE
    needs_lists = True

    def unused_reason(self, name, data):
        if name == "frames_root":
            return "does not apply to --dataset rawframes, whose frames and flow are read under --root"
        return super().unused_reason(name, data)
