"""Spatial pooling part ``attention``: the abstract's rejected spatial attention (docs/design.md §2.8). A softmax
attention over the H×W positions of each snippet's last feature map replaces the global average; the branches
share the grid, so one map per snippet is scored by both branches and pools both, as the joint temporal attention
does over the snippets (§2.3).

Contract: as every spatial pooling part (``models/parts/spatial_average.py``); it gives the maps
(``outputs()``: ``spatial_attention``).

Here, with ``x_rgb[n, :, h, w]`` the RGB map's feature vector at position (h, w) (and the flow's alike):
``e[n, h, w] = <x_rgb[n, :, h, w], w_rgb> + <x_flow[n, :, h, w], w_flow>``, ``a[n] = softmax_{h,w}(e[n])``,
``p_rgb[n] = Σ_{h,w} a[n, h, w] x_rgb[n, :, h, w]`` and ``p_flow`` alike: a 1×1 convolution of each branch's map
to one score, summed. There is no bias (a softmax ignores it). The scoring vectors ``w_rgb``, ``w_flow`` ``[C]``
(state ``spatial_pooling.w_rgb``, ``spatial_pooling.w_flow``) start at zero: the network starts as the global
average and learns to weigh.

It is the ``joint_attention_pool`` op (§4) unchanged, the positions in place of the snippets: each snippet image
``n`` is one of the op's clips, its ``H*W`` positions its ``T`` axis (``[N, H*W, C]`` per branch, no mask), so the
fused kernels, their accumulation rule and their export serve it as they are. One branch alone (``--streams rgb``
or ``flow``): the map is scored by that branch alone, by the same op given the branch twice with a zero second
scoring vector (the second pooled copy is dropped), so one-stream models have it too.
"""

from __future__ import annotations

import torch
from torch import nn

from ...ops import joint_attention_pool
from ...options import NoOptions
from ..part import Part, PartContext, UsesOps
from ..registry import register


@register("spatial_pooling", "attention")
class SpatialAttentionPooling(UsesOps, Part):
    Options = NoOptions
    # Its maps are drawn over the frames by the evaluation, and an ablation keeps them (jna_fast/variants.py).
    LEARNS_ATTENTION = True

    def __init__(self, options: NoOptions, context: PartContext):
        super().__init__()
        self.branches = context.branches
        self.backend = context.backend
        for branch in self.branches:
            self.register_parameter(f"w_{branch}", nn.Parameter(torch.zeros(context.channels)))
        if len(self.branches) == 1:
            self.register_buffer("zeros", torch.zeros(context.channels), persistent=False)

    @staticmethod
    def out_channels(channels: int) -> int:
        return channels

    def outputs(self) -> tuple[str, ...]:
        return ("spatial_attention",)

    def forward(self, xs: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        images, _, height, width = xs[0].shape
        # [N, C, H, W] -> [N, H*W, C]: the positions as the op's T axis (no copy for channels_last maps).
        positions = tuple(x.flatten(2).transpose(1, 2) for x in xs)
        vectors = [getattr(self, f"w_{branch}") for branch in self.branches]
        if len(positions) == 1:
            p, _, attention = joint_attention_pool(positions[0], positions[0], vectors[0], self.zeros,
                                                   backend=self.backend)
            pooled = (p,)
        else:
            p_rgb, p_flow, attention = joint_attention_pool(*positions, *vectors, backend=self.backend)
            pooled = (p_rgb, p_flow)
        return pooled, attention.view(images, height, width)

    def describe(self) -> dict:
        scored = "both branches" if len(self.branches) == 2 else f"the {self.branches[0]} branch alone"
        return {"spatial_attention": f"softmax over the positions, scored by {scored}"}
