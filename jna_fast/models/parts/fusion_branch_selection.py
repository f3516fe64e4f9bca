"""Fusion part ``branch_selection``: the abstract's rejected branch selection (docs/design.md §2.8). A learnt gate
weighs, per clip, the class scores of the two branches: softly while training, and at test time it selects the
scores of the branch it weighs more. The per-branch classifiers and their auxiliary loss are ``late_scores``'s.

Contract: as every fusion part (``models/parts/fusion_late_scores.py``); it gives one further output,
``branch_gate`` (``outputs()``), returned as the fourth element of ``forward``. Needs both streams.

Here: ``g = softmax(gate([p_rgb, p_flow]))`` ``[B, 2]`` (``gate``: ``Linear(2C, 2)``, starting at zero: an even
weighing of the branches), ``logits_rgb = fc_rgb(p_rgb)``, ``logits_flow = fc_flow(p_flow)``. Training:
``logits = g_rgb * logits_rgb + g_flow * logits_flow``. Evaluation (``not self.training``): ``logits`` are the
scores of the branch of the higher weight (the RGB branch on a tie: :func:`selects_rgb`). ``branch_gate`` is ``g``
(float32; float64 for a float64 model) in both modes. Loss ``CE(logits) + aux_loss_weight * (CE(logits_rgb) +
CE(logits_flow))`` in float32. ``snippet_logits``: each snippet gated by the gate of its own features, as the clip
is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...options import option
from ..part import Part, PartContext
from ..registry import register
from .fusion_late_scores import branch_loss


@dataclass(frozen=True)
class BranchSelectionOptions:
    aux_loss_weight: float = option(0.5, "weight of the per-branch cross-entropies in the loss", minimum=0)


def selects_rgb(gate: torch.Tensor) -> torch.Tensor:
    """bool ``[...]``: whether evaluation selects the RGB branch by gate weights ``[..., 2]`` (the higher weight; RGB
    on a tie)."""
    return gate[..., 0] >= gate[..., 1]


@register("fusion", "branch_selection")
class BranchSelection(Part):
    Options = BranchSelectionOptions
    NEEDS_BOTH_STREAMS = True

    def __init__(self, options: BranchSelectionOptions, context: PartContext):
        super().__init__()
        self.options = options
        self.fc_rgb = nn.Linear(context.channels, context.num_classes)
        self.fc_flow = nn.Linear(context.channels, context.num_classes)
        self.gate = nn.Linear(2 * context.channels, 2)
        # An even weighing to start with: the gate learns which branch to trust from there.
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def outputs(self) -> tuple[str, ...]:
        return ("branch_gate",)

    def weighed(self, joined: torch.Tensor, logits_rgb: torch.Tensor, logits_flow: torch.Tensor):
        """(the gated logits, the gate ``[..., 2]`` float32) of concatenated features ``[..., 2C]``."""
        scores = self.gate(joined)
        # float32 under autocast's bf16 (float64 for a float64 model, as the attention's weights)
        gate = scores.to(torch.promote_types(scores.dtype, torch.float32)).softmax(-1)
        if not self.training:
            # A mask, not Python control flow: the exported graphs select per clip too. torch.where, so that the
            # scores of the branch not selected never reach the output (0 x inf would).
            return torch.where(selects_rgb(gate).unsqueeze(-1), logits_rgb, logits_flow), gate
        weights = gate.to(logits_rgb.dtype)
        return weights[..., :1] * logits_rgb + weights[..., 1:] * logits_flow, gate

    def forward(self, pooled: tuple[torch.Tensor, ...], features: tuple[torch.Tensor, ...]):
        p_rgb, p_flow = pooled
        branch_logits = (self.fc_rgb(p_rgb), self.fc_flow(p_flow))
        logits, gate = self.weighed(torch.cat(pooled, -1), *branch_logits)
        snippet_logits, _ = self.weighed(torch.cat(features, -1), self.fc_rgb(features[0]), self.fc_flow(features[1]))
        return logits, branch_logits, snippet_logits, {"branch_gate": gate}

    def loss(self, output, target: torch.Tensor) -> torch.Tensor:
        return branch_loss(output, target, float(self.options.aux_loss_weight))

    def formula(self) -> str:
        return ("g = softmax(Linear(2C, 2)([p_rgb, p_flow])) (branch_gate); training: g_rgb * logits_rgb + "
                "g_flow * logits_flow; evaluation: the logits of the branch of the higher g")

    def describe(self) -> dict:
        return {"fusion": self.formula()}
