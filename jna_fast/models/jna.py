"""The jna_fast formulation of JNA ("Joint Network based Attention for Action Recognition", arXiv 1611.05215).

Only the paper's abstract is available; this formulation (DESIGN §2) follows it and two-stream/TSN practice:
two ResNet branches (RGB frames, optical-flow stacks) that share information through learnable cross-stitch
units after chosen stages, one temporal attention over the snippets scored jointly by both branches and
shared by both, per-branch classifiers, and TSN score fusion. No fully-connected fusion layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import cross_stitch, joint_attention_pool
from .resnet import ResNet, cross_modality_conv1

BACKBONE_DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}


@dataclass
class JNAOutput:
    logits: torch.Tensor  # [B, K] fused: w_rgb * logits_rgb + w_flow * logits_flow
    logits_rgb: torch.Tensor  # [B, K]
    logits_flow: torch.Tensor  # [B, K]
    attention: torch.Tensor  # [B, T] float32, rows sum to 1 over real snippets, 0 on masked ones


class CrossStitch(nn.Module):
    """Channel-wise learnable mixing of the two branches (DESIGN §2.1)."""

    def __init__(self, channels: int, self_weight: float = 0.9, backend: str | None = None):
        super().__init__()
        init = torch.tensor([[self_weight, 1 - self_weight], [1 - self_weight, self_weight]])
        self.alpha = nn.Parameter(init.repeat(channels, 1, 1))
        self.backend = backend

    def forward(self, x_rgb: torch.Tensor, x_flow: torch.Tensor):
        return cross_stitch(x_rgb, x_flow, self.alpha, backend=self.backend)


class JointTemporalAttention(nn.Module):
    """One softmax attention over the T snippets, scored by both branches, pooling both (DESIGN §2.2).

    The scoring vectors start at zero: the network starts as TSN's average consensus and learns to weigh.
    """

    def __init__(self, channels: int, backend: str | None = None):
        super().__init__()
        self.w_rgb = nn.Parameter(torch.zeros(channels))
        self.w_flow = nn.Parameter(torch.zeros(channels))
        self.backend = backend

    def forward(self, f_rgb: torch.Tensor, f_flow: torch.Tensor, mask: torch.Tensor | None = None):
        return joint_attention_pool(f_rgb, f_flow, self.w_rgb, self.w_flow, mask, backend=self.backend)


class JNA(nn.Module):
    """Two-stream JNA network.

    ``model(rgb [B,T,3,H,W], flow [B,T,2L,H,W], mask=None [B,T] bool)`` returns a :class:`JNAOutput`.
    ``backend`` forces the ops' backend (None: the best available; see ``jna_fast.ops.backends``).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        num_segments: int = 3,
        flow_length: int = 5,
        share_after: tuple[int, ...] = (3, 4),
        dropout: float = 0.5,
        fusion_weights: tuple[float, float] = (1.0, 1.5),
        aux_loss_weight: float = 0.5,
        stitch_self_weight: float = 0.9,
        backend: str | None = None,
    ):
        super().__init__()
        if backbone not in BACKBONE_DEPTHS:
            raise ValueError(f"backbone: expected one of {sorted(BACKBONE_DEPTHS)}, got {backbone!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        if flow_length < 1:
            raise ValueError(f"flow_length: expected >= 1, got {flow_length}")
        bad_stages = [s for s in share_after if s not in (1, 2, 3, 4)]
        if bad_stages:
            raise ValueError(f"share_after: stages must be in 1..4, got {bad_stages}")
        depth = BACKBONE_DEPTHS[backbone]
        self.num_classes = num_classes
        self.backbone_name = backbone
        self.num_segments = num_segments
        self.flow_length = flow_length
        self.share_after = tuple(sorted(set(share_after)))
        self.fusion_weights = tuple(float(w) for w in fusion_weights)
        self.aux_loss_weight = float(aux_loss_weight)
        self.rgb = ResNet(depth, in_channels=3, num_classes=None)
        self.flow = ResNet(depth, in_channels=2 * flow_length, num_classes=None)
        self.stitches = nn.ModuleDict(
            {str(s): CrossStitch(self.rgb.stage_channels(s), stitch_self_weight, backend) for s in self.share_after}
        )
        channels = self.rgb.feature_dim
        self.attention = JointTemporalAttention(channels, backend)
        self.dropout = nn.Dropout(dropout)
        self.fc_rgb = nn.Linear(channels, num_classes)
        self.fc_flow = nn.Linear(channels, num_classes)

    def _check_inputs(self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None) -> None:
        if rgb.dim() != 5 or rgb.shape[2] != 3:
            raise ValueError(f"rgb: expected [B, T, 3, H, W], got shape {tuple(rgb.shape)}")
        expected = (*rgb.shape[:2], 2 * self.flow_length, *rgb.shape[3:])
        if tuple(flow.shape) != expected:
            raise ValueError(
                f"flow: expected [B, T, 2L, H, W] = {list(expected)} (L = flow_length = {self.flow_length}), "
                f"got {tuple(flow.shape)}"
            )
        if mask is not None and tuple(mask.shape) != tuple(rgb.shape[:2]):
            raise ValueError(f"mask: expected [B, T] = {list(rgb.shape[:2])}, got {tuple(mask.shape)}")

    def _snippets(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] -> [B*T, C, H, W], in the memory format of the backbone's weights."""
        x = x.flatten(0, 1)
        if self.rgb.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None = None) -> JNAOutput:
        self._check_inputs(rgb, flow, mask)
        batch, segments = rgb.shape[:2]
        x_rgb = self.rgb.stem(self._snippets(rgb))
        x_flow = self.flow.stem(self._snippets(flow))
        for (stage, rgb_layer), (_, flow_layer) in zip(self.rgb.stages(), self.flow.stages()):
            x_rgb, x_flow = rgb_layer(x_rgb), flow_layer(x_flow)
            if stage in self.share_after:
                x_rgb, x_flow = self.stitches[str(stage)](x_rgb, x_flow)
        f_rgb = self.rgb.pool(x_rgb).view(batch, segments, -1)
        f_flow = self.flow.pool(x_flow).view(batch, segments, -1)
        p_rgb, p_flow, attention = self.attention(f_rgb, f_flow, mask)
        logits_rgb = self.fc_rgb(self.dropout(p_rgb))
        logits_flow = self.fc_flow(self.dropout(p_flow))
        w_rgb, w_flow = self.fusion_weights
        return JNAOutput(w_rgb * logits_rgb + w_flow * logits_flow, logits_rgb, logits_flow, attention)

    def loss(self, output: JNAOutput, target: torch.Tensor) -> torch.Tensor:
        """CE(fused) + lambda * (CE(rgb) + CE(flow)) (DESIGN §2.3), computed in float32."""
        ce = lambda logits: F.cross_entropy(logits.float(), target)  # noqa: E731
        return ce(output.logits) + self.aux_loss_weight * (ce(output.logits_rgb) + ce(output.logits_flow))

    def load_backbone_weights(self, path: str | os.PathLike) -> None:
        """Load a torchvision-format ResNet weight file into both branches; the flow branch's first conv is
        initialised by cross-modality averaging. The classifier (``fc.*``) in the file is ignored."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(state).__name__}")
        backbone_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        expected = self.rgb.state_dict()
        missing = sorted(set(expected) - set(backbone_state))
        unexpected = sorted(set(backbone_state) - set(expected))
        mismatched = [
            f"{k}: file {tuple(backbone_state[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in expected if k in backbone_state and backbone_state[k].shape != expected[k].shape
        ]
        if missing or unexpected or mismatched:
            raise ValueError(
                f"{path}: not a torchvision {self.backbone_name} state dict: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
                f"shape mismatches {mismatched[:5]}"
            )
        self.rgb.load_state_dict(backbone_state)
        flow_state = dict(backbone_state)
        flow_state["conv1.weight"] = cross_modality_conv1(backbone_state["conv1.weight"], 2 * self.flow_length)
        self.flow.load_state_dict(flow_state)
