"""The jna_fast formulation of JNA ("Joint Network based Attention for Action Recognition", arXiv 1611.05215), by
its keyword arguments: :class:`JNA` maps them onto the parts of :class:`jna_fast.models.network.Network`.

Only the paper's abstract is available; this formulation (docs/design.md §2) follows it and two-stream/TSN practice:
two ResNet branches (RGB frames, optical-flow stacks) that share information through learnable cross-stitch
units after chosen stages, one temporal attention over the snippets scored jointly by both branches and
shared by both, per-branch classifiers, and TSN score fusion. No fully-connected fusion layer.
"""

from __future__ import annotations

from .network import STREAMS, JNAOutput, ModelConfig, Network, part
from .parts.sharing_cross_stitch import CrossStitch
from .parts.temporal_joint_attention import JointTemporalAttention, attention_evidence_loss
from .resnet import ARCHITECTURES, STAGES

__all__ = ["JNA", "JNAOutput", "CrossStitch", "JointTemporalAttention", "attention_evidence_loss", "BACKBONE_DEPTHS",
           "STREAMS", "CONSENSUS", "branches_fit"]

BACKBONE_DEPTHS = {f"resnet{depth}": depth for depth in ARCHITECTURES}
CONSENSUS = ("attention", "average")
# consensus -> the temporal pooling part
TEMPORAL_POOLING = {"attention": "joint_attention", "average": "average"}


def branches_fit(streams: str, share_after: tuple[int, ...], consensus: str) -> bool:
    """Whether the sharing and the consensus fit the branches: one branch alone shares with nothing, and the joint
    attention is scored by both, so ``streams`` other than "both" need no sharing and the average consensus."""
    return streams == "both" or (not share_after and consensus == "average")


class JNA(Network):
    """Two-stream JNA network, built from its keyword arguments.

    ``model(rgb, flow, mask=None)`` takes ``rgb`` ``[B, T, 3, H, W]`` and ``flow`` ``[B, T, 2L, H, W]`` (float, L =
    ``flow_length``) and an optional ``mask`` ``[B, T]`` bool (False: a padding snippet), and returns a
    :class:`JNAOutput`. The number of snippets T is the input's: the model takes any. Loading a trained checkpoint
    and predicting are ``jna_fast.inference.Predictor``'s.

    The ablations of the paper's claims are configurations of this one model: ``share_after=()`` processes the
    branches apart (sharing ``none``); ``consensus="average"`` pools the snippets by TSN's average instead of the
    attention (temporal pooling ``average``); ``streams="rgb"`` or ``"flow"`` builds one branch alone (its input may
    then be None; no sharing, average consensus), and the logits of the missing branch are None. The learning-rate
    factors and warm-ups of the attention and the stitches are the parts' defaults (build the model from a
    :class:`jna_fast.models.ModelConfig` to set them).

    Args:
        num_classes: number of classes K (>= 1).
        backbone: the ResNet of each branch: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"`` or
            ``"resnet152"``.
        flow_length: L, the flow frames stacked per snippet (the flow input has 2L channels: x and y of each).
        share_after: the backbone stages (1..4) followed by a cross-stitch unit; ``()``: no sharing.
        dropout: dropout probability before the classifiers.
        fusion_weights: weights of the RGB and flow class scores in the fused scores.
        aux_loss_weight: weight of the per-branch cross-entropies in the loss.
        stitch_self_weight: initial cross-stitch weights: each branch keeps this share of itself and takes the rest
            from the other (1.0 starts the branches apart).
        stitch_normalise: apply the stitch weights to the branches brought to one scale (per-channel RMS ratio).
        stitch_shared_fraction: share of each unit's channels mixed (in (0, 1]); the others stay private to each
            branch.
        attention_supervision: weight of the snippet-evidence term that teaches the attention which snippets show
            the action (used with ``consensus="attention"`` only).
        streams: ``"both"``, ``"rgb"`` or ``"flow"``: the branches built.
        consensus: ``"attention"`` (the joint temporal attention) or ``"average"`` (TSN's average).
        backend: forces the ops' backend (None: the best available; see ``jna_fast.ops.select_backend``).

    Raises:
        ValueError: ``streams``, ``consensus`` or ``backbone`` is not one of the names above, a stage of
            ``share_after`` is not in 1..4, a one-stream model is asked for sharing or the attention consensus, or
            ``num_classes`` or ``flow_length`` is below 1.
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
        _check_arguments(streams, consensus, share_after, backbone)
        sharing = (part("sharing", "cross_stitch", after=tuple(share_after), self_weight=stitch_self_weight,
                        normalise=stitch_normalise, shared_fraction=stitch_shared_fraction)
                   if share_after else part("sharing", "none"))
        temporal = (part("temporal_pooling", "joint_attention", supervision=float(attention_supervision))
                    if consensus == "attention" else part("temporal_pooling", "average"))
        config = ModelConfig(
            backbone=part("backbone", backbone), sharing=sharing, spatial_pooling=part("spatial_pooling", "average"),
            temporal_pooling=temporal, fusion=part("fusion", "late_scores", weights=tuple(fusion_weights),
                                                   aux_loss_weight=aux_loss_weight),
            streams=streams, flow_length=flow_length, dropout=dropout, op_backend=backend)
        super().__init__(num_classes, config)
        self.share_after = tuple(sorted(set(share_after)))
        self.fusion_weights = tuple(float(w) for w in fusion_weights)
        self.aux_loss_weight = float(aux_loss_weight)
        self.consensus = consensus
        self.attention_supervision = float(attention_supervision) if consensus == "attention" else 0.0


def _check_arguments(streams: str, consensus: str, share_after, backbone: str) -> None:
    if streams not in STREAMS:
        raise ValueError(f"streams: expected one of {STREAMS}, got {streams!r}")
    if consensus not in CONSENSUS:
        raise ValueError(f"consensus: expected one of {CONSENSUS}, got {consensus!r}")
    if not branches_fit(streams, share_after, consensus):
        raise ValueError(f"streams={streams!r}: one branch shares with nothing and the joint attention is "
                         f"scored by both; use share_after=() and consensus='average'")
    if backbone not in BACKBONE_DEPTHS:
        raise ValueError(f"backbone: expected one of {sorted(BACKBONE_DEPTHS)}, got {backbone!r}")
    bad_stages = [s for s in share_after if s not in STAGES]
    if bad_stages:
        raise ValueError(f"share_after: stages must be in {min(STAGES)}..{max(STAGES)}, got {bad_stages}")
