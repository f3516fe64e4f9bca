"""Spatial pooling part ``average``: the global average over a snippet's feature map (TSN's, ResNet's).

Contract (every spatial pooling part): ``forward(x [N, C, H, W]) -> [N, out_channels(C)]``, one feature vector per
snippet image; ``out_channels(C)`` is what the temporal pooling and the fusion are built for.
"""

from __future__ import annotations

import torch
from torch import nn

from ...options import NoOptions
from ..part import Part, PartContext
from ..registry import register


@register("spatial_pooling", "average")
class AverageSpatialPooling(Part):
    Options = NoOptions

    def __init__(self, options: NoOptions = NoOptions(), context: PartContext | None = None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))

    @staticmethod
    def out_channels(channels: int) -> int:
        return channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(x), 1)
