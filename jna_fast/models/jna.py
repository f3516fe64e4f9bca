"""The jna_fast formulation of JNA ("Joint Network based Attention for Action Recognition", arXiv 1611.05215).

Only the paper's abstract is available; this formulation (docs/design.md §2) follows it and two-stream/TSN practice:
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
from .resnet import STAGES, ResNet, cross_modality_conv1

BACKBONE_DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}


@dataclass
class JNAOutput:
    logits: torch.Tensor  # [B, K] fused: w_rgb * logits_rgb + w_flow * logits_flow
    logits_rgb: torch.Tensor  # [B, K]
    logits_flow: torch.Tensor  # [B, K]
    attention: torch.Tensor  # [B, T] float32, rows sum to 1 over real snippets, 0 on masked ones
    # [B, T, K] the fused classifier applied to each snippet's own features: what each snippet says on its own.
    # The heads are linear, so the clip's logits are these averaged with the attention (before dropout).
    snippet_logits: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # [B, T] bool as given to forward (None: every snippet is real)


def attention_evidence_loss(output: JNAOutput, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the snippets' own evidence to the attention, averaged over clips.

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


class CrossStitch(nn.Module):
    """Channel-wise learnable mixing of the two branches (docs/design.md §2.2).

    With ``normalise``, the weights apply to the branches brought to one scale: the RGB and flow feature maps of a
    channel can differ in size several times over (measured: ``benchmarks/results/sharing_2026-12-01.md``), so
    that a cross weight of 0.1 takes a far larger share of one branch than of the other, and a share that drifts
    with training. The mixing used is ``alpha`` with each cross weight multiplied by the ratio of the two
    branches' root-mean-square activations of the channel (batch statistics in training, their running average in
    evaluation, as batch normalisation keeps them): ``y_rgb = a00 x_rgb + a01 (s_rgb / s_flow) x_flow`` and
    ``y_flow = a10 (s_flow / s_rgb) x_rgb + a11 x_flow``. The statistics are constants for the gradient; the op and
    its backends are unchanged (it receives the rescaled weights).

    ``shared_fraction`` < 1 mixes only the first ``round(shared_fraction * channels)`` channels; the others stay
    private to each branch (identity weights, not learnt), so that each branch keeps features of its own modality
    beside the shared ones (measured: ``benchmarks/results/sharing_2026-12-06.md``). ``alpha`` holds the shared
    channels' weights only.
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


class JointTemporalAttention(nn.Module):
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


STREAMS = ("both", "rgb", "flow")
CONSENSUS = ("attention", "average")


def branches_fit(streams: str, share_after: tuple[int, ...], consensus: str) -> bool:
    """Whether the sharing and the consensus fit the branches: one branch alone shares with nothing, and the joint
    attention is scored by both, so ``streams`` other than "both" need no sharing and the average consensus."""
    return streams == "both" or (not share_after and consensus == "average")


class JNA(nn.Module):
    """Two-stream JNA network.

    ``model(rgb [B,T,3,H,W], flow [B,T,2L,H,W], mask=None [B,T] bool)`` returns a :class:`JNAOutput`.
    ``backend`` forces the ops' backend (None: the best available; see ``jna_fast.ops.backends``). The number of
    snippets T is the input's: the model takes any. Loading a trained checkpoint and predicting are
    ``jna_fast.inference.Predictor``'s.

    The ablations of the paper's claims are configurations of this one model: ``share_after=()`` processes the
    branches apart (no sharing); ``consensus="average"`` pools the snippets by TSN's average instead of the
    attention (the attention vectors stay at zero, which is exactly the average); ``streams="rgb"`` or ``"flow"``
    builds one branch alone (its input may then be None; no sharing, average consensus), and the logits of the
    missing branch are None.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        flow_length: int = 5,
        share_after: tuple[int, ...] = (3, 4),
        dropout: float = 0.5,
        fusion_weights: tuple[float, float] = (1.0, 1.5),
        aux_loss_weight: float = 0.5,
        stitch_self_weight: float = 0.9,
        stitch_normalise: bool = False,
        stitch_shared_fraction: float = 1.0,
        attention_supervision: float = 0.0,
        streams: str = "both",
        consensus: str = "attention",
        backend: str | None = None,
    ):
        super().__init__()
        if streams not in STREAMS:
            raise ValueError(f"streams: expected one of {STREAMS}, got {streams!r}")
        if consensus not in CONSENSUS:
            raise ValueError(f"consensus: expected one of {CONSENSUS}, got {consensus!r}")
        if not branches_fit(streams, share_after, consensus):
            raise ValueError(f"streams={streams!r}: one branch shares with nothing and the joint attention is "
                             f"scored by both; use share_after=() and consensus='average'")
        if backbone not in BACKBONE_DEPTHS:
            raise ValueError(f"backbone: expected one of {sorted(BACKBONE_DEPTHS)}, got {backbone!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        if flow_length < 1:
            raise ValueError(f"flow_length: expected >= 1, got {flow_length}")
        bad_stages = [s for s in share_after if s not in STAGES]
        if bad_stages:
            raise ValueError(f"share_after: stages must be in {min(STAGES)}..{max(STAGES)}, got {bad_stages}")
        depth = BACKBONE_DEPTHS[backbone]
        self.num_classes = num_classes
        self.backbone_name = backbone
        self.flow_length = flow_length
        self.share_after = tuple(sorted(set(share_after)))
        self.fusion_weights = tuple(float(w) for w in fusion_weights)
        self.aux_loss_weight = float(aux_loss_weight)
        self.streams = streams
        self.consensus = consensus
        self.attention_supervision = float(attention_supervision) if consensus == "attention" else 0.0
        has_rgb, has_flow = streams in ("both", "rgb"), streams in ("both", "flow")
        self.rgb = ResNet(depth, in_channels=3, num_classes=None) if has_rgb else None
        self.flow = ResNet(depth, in_channels=2 * flow_length, num_classes=None) if has_flow else None
        branch = self.rgb if has_rgb else self.flow
        self.stitches = nn.ModuleDict(
            {str(s): CrossStitch(branch.stage_channels(s), stitch_self_weight, backend, stitch_normalise,
                                 shared_fraction=stitch_shared_fraction)
             for s in self.share_after}
        )
        channels = branch.feature_dim
        self.attention = JointTemporalAttention(channels, backend)
        if consensus == "average":
            self.attention.requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.fc_rgb = nn.Linear(channels, num_classes) if has_rgb else None
        self.fc_flow = nn.Linear(channels, num_classes) if has_flow else None

    def _check_inputs(self, rgb: torch.Tensor | None, flow: torch.Tensor | None, mask: torch.Tensor | None):
        """The [B, T] of the inputs the model uses, after checking their shapes."""
        if self.rgb is not None:
            if rgb is None or rgb.dim() != 5 or rgb.shape[2] != 3:
                raise ValueError(f"rgb: expected [B, T, 3, H, W], got {None if rgb is None else tuple(rgb.shape)}")
        if self.flow is not None:
            reference = rgb if self.rgb is not None else flow
            if flow is None or flow.dim() != 5:
                raise ValueError(f"flow: expected [B, T, 2L, H, W], got {None if flow is None else tuple(flow.shape)}")
            expected = (*reference.shape[:2], 2 * self.flow_length, *reference.shape[3:])
            if tuple(flow.shape) != expected:
                raise ValueError(
                    f"flow: expected [B, T, 2L, H, W] = {list(expected)} (L = flow_length = {self.flow_length}), "
                    f"got {tuple(flow.shape)}"
                )
        batch_shape = tuple((rgb if self.rgb is not None else flow).shape[:2])
        if mask is not None and tuple(mask.shape) != batch_shape:
            raise ValueError(f"mask: expected [B, T] = {list(batch_shape)}, got {tuple(mask.shape)}")
        return batch_shape

    def _snippets(self, x: torch.Tensor, branch: ResNet) -> torch.Tensor:
        """[B, T, C, H, W] -> [B*T, C, H, W], in the memory format of the backbone's weights."""
        x = x.flatten(0, 1)
        if branch.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, rgb: torch.Tensor | None, flow: torch.Tensor | None,
                mask: torch.Tensor | None = None) -> JNAOutput:
        batch, segments = self._check_inputs(rgb, flow, mask)
        if self.streams != "both":
            return self._one_stream(rgb if self.rgb is not None else flow, mask, batch, segments)
        x_rgb = self.rgb.stem(self._snippets(rgb, self.rgb))
        x_flow = self.flow.stem(self._snippets(flow, self.flow))
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
        snippet_logits = w_rgb * self.fc_rgb(f_rgb) + w_flow * self.fc_flow(f_flow)
        return JNAOutput(w_rgb * logits_rgb + w_flow * logits_flow, logits_rgb, logits_flow, attention,
                         snippet_logits, mask)

    def _one_stream(self, x: torch.Tensor, mask: torch.Tensor | None, batch: int, segments: int) -> JNAOutput:
        """One branch alone with TSN's average consensus over the real snippets."""
        branch, fc = (self.rgb, self.fc_rgb) if self.rgb is not None else (self.flow, self.fc_flow)
        x = branch.stem(self._snippets(x, branch))
        for _, layer in branch.stages():
            x = layer(x)
        features = branch.pool(x).view(batch, segments, -1)
        real = (torch.ones(batch, segments, dtype=torch.bool, device=features.device) if mask is None
                else mask.to(features.device))
        weights = real.float() / real.float().sum(1, keepdim=True).clamp_min(1)
        pooled = torch.einsum("bt,btc->bc", weights.to(features.dtype), features)
        logits = fc(self.dropout(pooled))
        rgb_logits, flow_logits = (logits, None) if self.rgb is not None else (None, logits)
        return JNAOutput(logits, rgb_logits, flow_logits, weights, fc(features), mask)

    def loss(self, output: JNAOutput, target: torch.Tensor) -> torch.Tensor:
        """CE(fused) + lambda * (CE(rgb) + CE(flow)) (docs/design.md §2.5), plus ``attention_supervision`` times the
        snippet-evidence term (:func:`attention_evidence_loss`), computed in float32. One branch alone: CE."""
        ce = lambda logits: F.cross_entropy(logits.float(), target)  # noqa: E731
        if self.streams != "both":
            return ce(output.logits)
        loss = ce(output.logits) + self.aux_loss_weight * (ce(output.logits_rgb) + ce(output.logits_flow))
        if self.attention_supervision > 0 and output.snippet_logits is not None:
            loss = loss + self.attention_supervision * attention_evidence_loss(output, target)
        return loss

    def load_backbone_weights(self, path: str | os.PathLike) -> None:
        """Load a torchvision-format ResNet weight file into each branch; the flow branch's first conv is
        initialised by cross-modality averaging. The classifier (``fc.*``) in the file is ignored."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(state).__name__}")
        backbone_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        flow_conv1 = "conv1.weight"
        branch = self.rgb if self.rgb is not None else self.flow
        expected = dict(branch.state_dict())
        conv1 = branch.conv1.weight  # a file holds the RGB conv1: 3 input channels
        expected[flow_conv1] = conv1.new_empty(conv1.shape[0], 3, *conv1.shape[2:])
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
        if self.rgb is not None:
            self.rgb.load_state_dict(backbone_state)
        if self.flow is not None:
            flow_state = dict(backbone_state)
            flow_state[flow_conv1] = cross_modality_conv1(backbone_state[flow_conv1], 2 * self.flow_length)
            self.flow.load_state_dict(flow_state)
