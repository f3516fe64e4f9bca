"""One video file, as prediction reads it: no labels, no splits; not a dataset to train on."""

from ..lists import single_video_index
from .base import DatasetSpec, register_dataset


@register_dataset("video")
class Video(DatasetSpec):
    name = "video"
    trainable = False

    def index(self, root, *, subset, split, list_file, frames_root, num_classes, issues):
        return single_video_index(root, frames_root, num_classes)
