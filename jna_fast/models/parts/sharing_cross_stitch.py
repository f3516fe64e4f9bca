"""Sharing part ``cross_stitch``: learnable channel-wise mixing of the two branches after chosen stages
(docs/design.md §2.2), with the ``cross_stitch`` op (§3).

Contract: as every sharing part (``models/parts/sharing_none.py``): ``forward(stage, (x_rgb, x_flow))`` after each
stage; the stages in ``after`` mix the two maps, the others pass them through. Needs both streams. State: one
:class:`CrossStitch` per stage in ``after``, named by the stage number (``sharing.3.alpha``). Its weights form the
``stitches`` optimiser group (``lr_scale``, ``warmup``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...ops import cross_stitch
from ...options import option
from ..part import Part, PartContext, UsesOps, schedule
from ..registry import register


@dataclass(frozen=True)
class CrossStitchOptions:
    after: tuple[int, ...] = option((3, 4), "the backbone stages followed by a cross-stitch unit", metavar="STAGES",
                                    minimum=1, maximum=4)
    self_weight: float = option(0.9, "initial cross-stitch weights: each branch keeps this share of itself and takes "
                                     "the rest from the other (1.0 starts the branches apart)", minimum=0, maximum=1)
    normalise: bool = option(False, "apply the weights to the branches brought to one scale (per-channel RMS ratio)")
    shared_fraction: float = option(1.0, "share of each unit's channels mixed; the others stay private to each "
                                         "branch", above=0, maximum=1)
    lr_scale: float = option(1.0, "learning-rate factor of the cross-stitch weights", minimum=0)
    warmup: float = option(0.0, "share of the epochs during which the cross-stitch weights stay at their initial "
                                "values", minimum=0, maximum=1)


class CrossStitch(UsesOps, nn.Module):
    """Channel-wise learnable mixing of the two branches (docs/design.md §2.2).

    With ``normalise``, the weights apply to the branches brought to one scale: the mixing used is ``alpha`` with
    each cross weight multiplied by the ratio of the two branches' root-mean-square activations of the channel
    (batch statistics in training, their running average in evaluation, as batch normalisation keeps them):
    ``y_rgb = a00 x_rgb + a01 (s_rgb / s_flow) x_flow`` and ``y_flow = a10 (s_flow / s_rgb) x_rgb + a11 x_flow``.
    The statistics are constants for the gradient; the op and its backends are unchanged (it receives the rescaled
    weights).

    ``shared_fraction`` < 1 mixes only the first ``round(shared_fraction * channels)`` channels; the others stay
    private to each branch (identity weights, not learnt). ``alpha`` holds the shared channels' weights only.
    """

    def __init__(self, channels: int, self_weight: float = 0.9, backend: str | None = None,
                 normalise: bool = False, momentum: float = 0.1, shared_fraction: float = 1.0):
        super().__init__()
        if not 0 < shared_fraction <= 1:
            raise ValueError(f"shared_fraction: expected in (0, 1], got {shared_fraction}")
        shared = max(1, round(shared_fraction * channels))
        init = torch.tensor([[self_weight, 1 - self_weight], [1 - self_weight, self_weight]])
        self.alpha = nn.Parameter(init.repeat(shared, 1, 1))
        self.private_channels = channels - shared
        self.backend = backend
        self.normalise = normalise
        self.momentum = momentum
        if normalise:
            self.register_buffer("running_rms", torch.ones(2, channels))

    def mixing(self, x_rgb: torch.Tensor, x_flow: torch.Tensor) -> torch.Tensor:
        """The [C, 2, 2] weights the op applies."""
        alpha = self.alpha
        if self.private_channels:
            identity = torch.eye(2, dtype=alpha.dtype, device=alpha.device).expand(self.private_channels, 2, 2)
            alpha = torch.cat([alpha, identity])
        if not self.normalise:
            return alpha
        if self.training:
            with torch.no_grad():
                rms = torch.stack([x.float().pow(2).mean((0, 2, 3)).sqrt() for x in (x_rgb, x_flow)])
                self.running_rms.lerp_(rms, self.momentum)
        else:
            rms = self.running_rms
        rms = rms.clamp_min(torch.finfo(torch.float32).tiny)  # a channel silent in one branch: no division by 0
        ones = torch.ones_like(rms[0])
        # [[1, s_rgb / s_flow], [s_flow / s_rgb, 1]] per channel
        scale = torch.stack([torch.stack([ones, rms[0] / rms[1]], -1), torch.stack([rms[1] / rms[0], ones], -1)], -2)
        return alpha * scale.to(alpha.dtype)

    def forward(self, x_rgb: torch.Tensor, x_flow: torch.Tensor):
        return cross_stitch(x_rgb, x_flow, self.mixing(x_rgb, x_flow), backend=self.backend)


@register("sharing", "cross_stitch")
class CrossStitchSharing(Part):
    Options = CrossStitchOptions
    NEEDS_BOTH_STREAMS = True

    def __init__(self, options: CrossStitchOptions, context: PartContext):
        super().__init__()
        stages = context.backbone.STAGES
        bad = [s for s in options.after if s not in stages]
        if bad:
            raise ValueError(f"sharing.after: stages must be in {min(stages)}..{max(stages)}, got {bad}")
        self.options = options
        self.after = tuple(sorted(set(options.after)))
        for stage in self.after:
            self.add_module(str(stage), CrossStitch(
                context.backbone.stage_channels(stage), options.self_weight, context.backend, options.normalise,
                shared_fraction=options.shared_fraction))

    def forward(self, stage: int, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if stage not in self.after:
            return xs
        return tuple(self._modules[str(stage)](*xs))

    def __len__(self) -> int:
        return len(self.after)

    def __getitem__(self, stage) -> CrossStitch:
        return self._modules[str(stage)]

    def scheduled_parameters(self):
        return schedule("stitches", self.parameters(), self.options.lr_scale, self.options.warmup)

    def describe(self) -> dict:
        return {"share_after": list(self.after)}
