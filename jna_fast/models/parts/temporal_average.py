"""Temporal pooling part ``average``: TSN's average consensus over the real snippets.

Contract (every temporal pooling part): ``forward(features, mask) -> (pooled, attention)``: ``features`` the tuple
of the branches' snippet features ``[B, T, C]`` (in the order of ``context.branches``), ``mask`` ``[B, T]`` bool or
None (every snippet real); ``pooled`` the tuple of ``[B, C]`` per branch, ``attention`` ``[B, T]`` float32, the
weight of each snippet (rows sum to 1 over the real snippets, 0 on masked ones). ``auxiliary_loss(output, target)``
is its term of the loss, if any. Any T >= 1.

Here the weights are uniform over the real snippets. Two branches are pooled by the ``joint_attention_pool`` op
with zero scoring vectors (non-persistent buffers), which is exactly the average and the computation of the model
before parts, kernels included; one branch by a masked mean.
"""

from __future__ import annotations

import torch

from ...ops import joint_attention_pool
from ...options import NoOptions
from ..part import Part, PartContext, UsesOps
from ..registry import register


@register("temporal_pooling", "average")
class AverageTemporalPooling(UsesOps, Part):
    Options = NoOptions

    def __init__(self, options: NoOptions, context: PartContext):
        super().__init__()
        self.backend = context.backend
        self.register_buffer("zeros", torch.zeros(context.channels), persistent=False)

    def forward(self, features: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None):
        if len(features) == 2:
            p_rgb, p_flow, attention = joint_attention_pool(*features, self.zeros, self.zeros, mask,
                                                            backend=self.backend)
            return (p_rgb, p_flow), attention
        (f,) = features
        batch, segments = f.shape[:2]
        real = (torch.ones(batch, segments, dtype=torch.bool, device=f.device) if mask is None
                else mask.to(f.device))
        weights = real.float() / real.float().sum(1, keepdim=True).clamp_min(1)
        return (torch.einsum("bt,btc->bc", weights.to(f.dtype), f),), weights

    def describe(self) -> dict:
        return {"consensus": "average", "attention": "uniform over the real snippets (average consensus)"}
