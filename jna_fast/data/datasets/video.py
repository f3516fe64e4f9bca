"""One video file, as prediction reads it: no labels, no splits; not a dataset to train on."""

from .base import DatasetSpec, register_dataset


@register_dataset("video")
class Video(DatasetSpec):
    name = "video"
    trainable = False
