"""Temporal pooling part ``joint_attention``: one softmax attention over the snippets, scored by both branches
and pooling both (docs/design.md §2.3), with the ``joint_attention_pool`` op (§4), and the snippet-evidence term
of the loss (§2.5).

Contract: as every temporal pooling part (``models/parts/temporal_average.py``). Needs both streams. State:
``w_rgb``, ``w_flow`` ``[C]``, starting at zero (TSN's average), the ``attention`` optimiser group (``lr_scale``,
``warmup``). Its auxiliary loss is ``supervision`` times :func:`attention_evidence_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...ops import joint_attention_pool
from ...options import option
from ..part import Part, PartContext, UsesOps, schedule
from ..registry import register


@dataclass(frozen=True)
class JointAttentionOptions:
    lr_scale: float = option(1.0, "learning-rate factor of the attention vectors w_rgb, w_flow", minimum=0)
    warmup: float = option(0.3, "share of the epochs trained with uniform attention (TSN's average) before the "
                                "attention learns", minimum=0, maximum=1)
    supervision: float = option(1.0, "weight of the snippet-evidence term that teaches the attention which snippets "
                                     "show the action", minimum=0)


def attention_evidence_loss(output, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the snippets' own evidence to the attention, averaged over clips (docs/design.md §2.5).

    The target weight of snippet t is the probability its own (fused) logits give the true class, normalised
    over the clip's real snippets: ``q_t = p_t(y) / sum_s p_s(y)``, taken as a constant (no gradient). Snippets
    that show the action support the label and gain attention; empty or misleading ones lose it. Early in
    training every snippet is equally uninformative, q is near uniform and the term holds the attention near
    TSN's average instead of letting it drift off the snippets whose features are still noisy.
    """
    with torch.no_grad():
        evidence = output.snippet_logits.float().log_softmax(-1)
        evidence = evidence.gather(-1, target.view(-1, 1, 1).expand(-1, evidence.shape[1], 1)).squeeze(-1)
        if output.mask is not None:
            evidence = evidence.masked_fill(~output.mask, float("-inf"))
        weights = evidence.softmax(-1)
    log_attention = output.attention.float().clamp_min(torch.finfo(torch.float32).tiny).log()
    return -(weights * log_attention).sum(-1).mean()


class JointTemporalAttention(UsesOps, nn.Module):
    """One softmax attention over the T snippets, scored by both branches, pooling both (docs/design.md §2.3).

    The scoring vectors start at zero: the network starts as TSN's average consensus and learns to weigh.
    """

    def __init__(self, channels: int, backend: str | None = None):
        super().__init__()
        self.w_rgb = nn.Parameter(torch.zeros(channels))
        self.w_flow = nn.Parameter(torch.zeros(channels))
        self.backend = backend

    def forward(self, f_rgb: torch.Tensor, f_flow: torch.Tensor, mask: torch.Tensor | None = None):
        return joint_attention_pool(f_rgb, f_flow, self.w_rgb, self.w_flow, mask, backend=self.backend)


@register("temporal_pooling", "joint_attention")
class JointAttentionPooling(JointTemporalAttention, Part):
    Options = JointAttentionOptions
    NEEDS_BOTH_STREAMS = True
    # Its weights are learnt per snippet: the ablation scores where they fall (a uniform pooling's "most attended
    # snippet" would be an arbitrary tie).
    LEARNS_ATTENTION = True

    def __init__(self, options: JointAttentionOptions, context: PartContext):
        super().__init__(context.channels, context.backend)
        self.options = options

    def forward(self, features: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None):
        p_rgb, p_flow, attention = super().forward(*features, mask)
        return (p_rgb, p_flow), attention

    def auxiliary_loss(self, output, target: torch.Tensor) -> torch.Tensor | None:
        if self.options.supervision > 0 and output.snippet_logits is not None:
            return self.options.supervision * attention_evidence_loss(output, target)
        return None

    def scheduled_parameters(self):
        return schedule("attention", (self.w_rgb, self.w_flow), self.options.lr_scale, self.options.warmup)

    def describe(self) -> dict:
        return {"consensus": "attention", "attention": "the joint attention, scored by both branches"}
