"""Fusion part ``late_scores``: a linear classifier per branch and TSN's weighted sum of their class scores
(docs/design.md §2.4), with the auxiliary per-branch loss (§2.5).

Contract (every fusion part): ``forward(pooled, features) -> (logits, branch_logits, snippet_logits)``: ``pooled``
the tuple of the branches' pooled features ``[B, C]`` (after dropout), ``features`` their snippet features
``[B, T, C]``; ``logits`` ``[B, K]`` fused, ``branch_logits`` the tuple of ``[B, K]`` per branch, ``snippet_logits``
``[B, T, K]`` what each snippet's own features say (or None). A fusion that gives further fields of
:class:`jna_fast.models.JNAOutput` names them in ``outputs()`` and returns them as a fourth element, a dict by name
(``branch_selection``'s ``branch_gate``). ``loss(output, target)`` is the classification loss of a
:class:`jna_fast.models.JNAOutput`; ``formula()`` says how ``logits`` is made, in words for export metadata. The
alternatives to this one, the abstract's rejected designs, are ``fully_connected`` and ``branch_selection``
(docs/design.md §2.8).

Here: ``logits = weights[0] * fc_rgb(p_rgb) + weights[1] * fc_flow(p_flow)``, loss ``CE(logits) +
aux_loss_weight * (CE(logits_rgb) + CE(logits_flow))`` in float32. One branch alone: its classifier's scores, CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...options import option
from ..part import Part, PartContext
from ..registry import register


@dataclass(frozen=True)
class LateScoresOptions:
    weights: tuple[float, float] = option((1.0, 1.5), "weights of the RGB and flow class scores in the fused scores",
                                          metavar="RGB,FLOW", minimum=0)
    aux_loss_weight: float = option(0.5, "weight of the per-branch cross-entropies in the loss", minimum=0)


def branch_loss(output, target: torch.Tensor, aux_loss_weight: float) -> torch.Tensor:
    """``CE(logits) + aux_loss_weight * (CE(logits_rgb) + CE(logits_flow))`` in float32: the loss of a fusion of
    two branches that keeps a classifier per branch (this one's, and the alternatives' of docs/design.md §2.8)."""
    ce = lambda logits: F.cross_entropy(logits.float(), target)  # noqa: E731
    return ce(output.logits) + aux_loss_weight * (ce(output.logits_rgb) + ce(output.logits_flow))


@register("fusion", "late_scores")
class LateScores(Part):
    Options = LateScoresOptions

    def __init__(self, options: LateScoresOptions, context: PartContext):
        super().__init__()
        if len(options.weights) != 2:
            raise ValueError(f"fusion.weights: expected two weights (RGB, flow), got {options.weights!r}")
        self.branches = context.branches
        self.weights = tuple(float(w) for w in options.weights)
        self.aux_loss_weight = float(options.aux_loss_weight)
        for branch in self.branches:
            self.add_module(f"fc_{branch}", nn.Linear(context.channels, context.num_classes))

    def forward(self, pooled: tuple[torch.Tensor, ...], features: tuple[torch.Tensor, ...]):
        heads = [self._modules[f"fc_{branch}"] for branch in self.branches]
        branch_logits = tuple(fc(p) for fc, p in zip(heads, pooled))
        if len(heads) == 1:
            return branch_logits[0], branch_logits, heads[0](features[0])
        w_rgb, w_flow = self.weights
        snippet_logits = w_rgb * heads[0](features[0]) + w_flow * heads[1](features[1])
        return w_rgb * branch_logits[0] + w_flow * branch_logits[1], branch_logits, snippet_logits

    def loss(self, output, target: torch.Tensor) -> torch.Tensor:
        if len(self.branches) == 1:
            return F.cross_entropy(output.logits.float(), target)
        return branch_loss(output, target, self.aux_loss_weight)

    def formula(self) -> str:
        if len(self.branches) == 1:
            return f"logits_{self.branches[0]}"
        return f"{self.weights[0]:g} * logits_rgb + {self.weights[1]:g} * logits_flow"

    def describe(self) -> dict:
        return {"fusion": self.formula()}
