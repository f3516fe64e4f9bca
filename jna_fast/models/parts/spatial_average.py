"""Spatial pooling part ``average``: the global average over a snippet's feature map (TSN's, ResNet's).

Contract (every spatial pooling part): ``forward(xs) -> (pooled, maps)``: ``xs`` the tuple of the branches' last
feature maps ``[N, C, H, W]`` (N = B*T snippet images, in the order of ``context.branches``); ``pooled`` the tuple
of their feature vectors ``[N, out_channels(C)]``; ``maps`` the weights ``[N, H, W]`` float32 of a pooling that
weighs the positions (each map sums to 1), or None. ``out_channels(C)`` is what the temporal pooling and the fusion
are built for. A part that gives ``maps`` says so in ``outputs()`` (``("spatial_attention",)``); the network
returns them as ``JNAOutput.spatial_attention`` ``[B, T, H, W]``.

Here each branch is averaged on its own (no maps), as the model before parts did.
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

    def forward(self, xs: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], None]:
        return tuple(torch.flatten(self.pool(x), 1) for x in xs), None
