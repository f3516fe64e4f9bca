"""Fusion part ``fully_connected``: the abstract's rejected fully-connected fusion (docs/design.md §2.8). The two
branches' pooled features are concatenated and classified by a small multilayer perceptron, in place of the
weighted sum of the branches' class scores; the per-branch classifiers and their auxiliary loss stay as in
``late_scores``, so that only the fusion differs.

Contract: as every fusion part (``models/parts/fusion_late_scores.py``). Needs both streams.

Here: ``logits = out(dropout(relu(hidden([p_rgb, p_flow]))))`` (``hidden``: ``Linear(2C, hidden)``, ``out``:
``Linear(hidden, K)``), ``logits_rgb = fc_rgb(p_rgb)``, ``logits_flow = fc_flow(p_flow)``, loss ``CE(logits) +
aux_loss_weight * (CE(logits_rgb) + CE(logits_flow))`` in float32. ``snippet_logits`` is the same perceptron on each
snippet's concatenated features ``[B, T, 2C]``, without its dropout. The perceptron is not linear, so the clip's
logits are no longer the attention's average of the snippets' (as they are for ``late_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...options import option
from ..part import Part, PartContext
from ..registry import register
from .fusion_late_scores import branch_loss


@dataclass(frozen=True)
class FullyConnectedOptions:
    hidden: int = option(512, "units of the fully-connected fusion's hidden layer", minimum=1)
    dropout: float = option(0.5, "dropout on the fully-connected fusion's hidden layer", minimum=0, below=1)
    aux_loss_weight: float = option(0.5, "weight of the per-branch cross-entropies in the loss", minimum=0)


@register("fusion", "fully_connected")
class FullyConnectedFusion(Part):
    Options = FullyConnectedOptions
    NEEDS_BOTH_STREAMS = True

    def __init__(self, options: FullyConnectedOptions, context: PartContext):
        super().__init__()
        self.options = options
        self.fc_rgb = nn.Linear(context.channels, context.num_classes)
        self.fc_flow = nn.Linear(context.channels, context.num_classes)
        self.hidden = nn.Linear(2 * context.channels, options.hidden)
        self.dropout = nn.Dropout(options.dropout)
        self.out = nn.Linear(options.hidden, context.num_classes)

    def classify(self, joined: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        """The perceptron's logits ``[..., K]`` of concatenated features ``[..., 2C]``."""
        hidden = F.relu(self.hidden(joined))
        return self.out(self.dropout(hidden) if dropout else hidden)

    def forward(self, pooled: tuple[torch.Tensor, ...], features: tuple[torch.Tensor, ...]):
        p_rgb, p_flow = pooled
        branch_logits = (self.fc_rgb(p_rgb), self.fc_flow(p_flow))
        snippet_logits = self.classify(torch.cat(features, -1), dropout=False)
        return self.classify(torch.cat(pooled, -1)), branch_logits, snippet_logits

    def loss(self, output, target: torch.Tensor) -> torch.Tensor:
        return branch_loss(output, target, float(self.options.aux_loss_weight))

    def formula(self) -> str:
        return (f"Linear({self.options.hidden}, K)(dropout(relu(Linear(2C, {self.options.hidden})"
                f"([p_rgb, p_flow]))))")

    def describe(self) -> dict:
        return {"fusion": self.formula()}
