"""Sharing part ``none``: the branches are processed apart (TSN).

Contract (every sharing part): ``forward(stage, xs)`` is called after each backbone stage with the tuple of the
branches' feature maps ``[N, C_stage, H, W]`` (in the order of ``context.branches``) and returns the tuple of the
same shapes that the next stage takes.
"""

from __future__ import annotations

import torch

from ...options import NoOptions
from ..part import Part, PartContext
from ..registry import register


@register("sharing", "none")
class NoSharing(Part):
    Options = NoOptions

    def __init__(self, options: NoOptions = NoOptions(), context: PartContext | None = None):
        super().__init__()

    def forward(self, stage: int, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return xs

    def describe(self) -> dict:
        return {"share_after": []}
