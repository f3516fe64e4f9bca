"""The network composed of parts (docs/design.md §2.7): a backbone per branch, sharing between their stages, a
spatial pooling of the snippets' feature maps, a temporal pooling over the snippets, dropout and a fusion of the
branches. Two streams (RGB and flow) or one; the one-stream variants are the same composition with one branch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
from torch import nn

from . import registry
from .backbone import Backbone
from .options import STREAMS
from .part import PartContext, ScheduledParameters

# streams -> the branches, in the order every part receives them
BRANCHES = {"both": ("rgb", "flow"), "rgb": ("rgb",), "flow": ("flow",)}
# The parts after the backbones, in the order the network applies (and registers) them.
PART_KINDS = ("sharing", "spatial_pooling", "temporal_pooling", "fusion")
# The order of the scheduled optimiser groups: that of the optimiser states written before parts (attention, then
# stitches), then any other part's in the network's order.
SCHEDULE_ORDER = ("temporal_pooling", "sharing", "spatial_pooling", "fusion")


@dataclass
class JNAOutput:
    """What the network's ``forward`` returns: the clip's logits, each branch's, and the attention over snippets.

    B: clips, T: snippets, K: classes. The tensors are on the input's device; the logits in the dtype the model
    computes in (float32, or the autocast dtype).

    Attributes:
        logits: ``[B, K]`` the fused logits (the fusion part's formula).
        logits_rgb: ``[B, K]`` the RGB branch's logits; None without an RGB branch.
        logits_flow: ``[B, K]`` the flow branch's logits; None without a flow branch.
        attention: ``[B, T]`` float32, rows sum to 1 over the real snippets, 0 on masked ones.
        snippet_logits: ``[B, T, K]`` the fused classifier applied to each snippet's own features: what each
            snippet says on its own. With a linear fusion (late_scores) the clip's logits are these averaged with
            the attention (before dropout).
        mask: ``[B, T]`` bool as given to forward (None: every snippet is real).
        spatial_attention: ``[B, T, H, W]`` float32: the weight of each position of each snippet's last feature
            map, summing to 1 per snippet (the spatial pooling ``attention``); None for the average pooling.
        branch_gate: ``[B, 2]`` float32: the weights of the RGB and flow branches, summing to 1 (the fusion
            ``branch_selection``, whose evaluation selects the branch of the higher weight); None for the other
            fusions.
    """

    logits: torch.Tensor
    logits_rgb: torch.Tensor | None
    logits_flow: torch.Tensor | None
    attention: torch.Tensor
    snippet_logits: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    spatial_attention: torch.Tensor | None = None
    branch_gate: torch.Tensor | None = None


@dataclass(frozen=True)
class PartChoice:
    """A part of a model configuration: its registered ``name`` and its ``options`` (an instance of its Options)."""

    name: str
    options: object


@dataclass(frozen=True)
class ModelConfig:
    """A model configuration, as :func:`build_model` reads it (any object with these attributes does)."""

    backbone: PartChoice
    sharing: PartChoice
    spatial_pooling: PartChoice
    temporal_pooling: PartChoice
    fusion: PartChoice
    streams: str = "both"
    flow_length: int = 5
    dropout: float = 0.5
    op_backend: str | None = None


def part(kind: str, name: str, **options) -> PartChoice:
    """The part ``name`` of ``kind`` with ``options`` (the others at their defaults)."""
    return PartChoice(name, registry.options(kind, name)(**options))


def _options(kind: str, choice) -> object:
    cls = registry.options(kind, choice.name)
    if not isinstance(choice.options, cls):
        raise TypeError(f"model.{kind}: {choice.name!r} takes options {cls.__name__}, got "
                        f"{type(choice.options).__name__}")
    return choice.options


class Network(nn.Module):
    """The network of :class:`ModelConfig` ``config``'s parts for ``num_classes`` classes.

    ``model(rgb [B,T,3,H,W], flow [B,T,2L,H,W], mask=None [B,T] bool)`` returns a :class:`JNAOutput`; the input of
    a branch the model does not have may be None. Any T >= 1. ``loss(output, target)`` is the fusion's loss plus
    every part's auxiliary term. ``inputs()`` and ``outputs()`` name what it takes and gives, for export.
    """

    def __init__(self, num_classes: int, config):
        super().__init__()
        if config.streams not in BRANCHES:
            raise ValueError(f"streams: expected one of {STREAMS}, got {config.streams!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        if config.flow_length < 1:
            raise ValueError(f"flow_length: expected >= 1, got {config.flow_length}")
        self.num_classes = num_classes
        self.streams = config.streams
        self.branches = BRANCHES[config.streams]
        self.flow_length = config.flow_length
        self.backbone_name = config.backbone.name
        self.choices = {kind: (getattr(config, kind).name, _options(kind, getattr(config, kind)))
                        for kind in ("backbone", *PART_KINDS)}
        classes = {kind: registry.lookup(kind, name) for kind, (name, _) in self.choices.items()}
        self._check_streams(classes)
        backbone_options = self.choices["backbone"][1]
        channels = self.input_channels()
        self.rgb = classes["backbone"](backbone_options, channels["rgb"]) if "rgb" in self.branches else None
        self.flow = classes["backbone"](backbone_options, channels["flow"]) if "flow" in self.branches else None
        context = PartContext(self.branches, self.branch(self.branches[0]), self.branch(self.branches[0]).feature_dim,
                              num_classes, config.op_backend)
        self.sharing = classes["sharing"](self.choices["sharing"][1], context)
        self.spatial_pooling = classes["spatial_pooling"](self.choices["spatial_pooling"][1], context)
        context = dataclasses.replace(context, channels=self.spatial_pooling.out_channels(context.channels))
        self.temporal_pooling = classes["temporal_pooling"](self.choices["temporal_pooling"][1], context)
        self.dropout = nn.Dropout(config.dropout)
        self.fusion = classes["fusion"](self.choices["fusion"][1], context)

    def _check_streams(self, classes: dict) -> None:
        if len(self.branches) > 1:
            return
        needing = [f"{kind} {self.choices[kind][0]!r}" for kind in PART_KINDS
                   if getattr(classes[kind], "NEEDS_BOTH_STREAMS", False)]
        if needing:
            raise ValueError(f"streams={self.streams!r}: one branch alone; the {', '.join(needing)} need both "
                             f"streams")

    def branch(self, name: str) -> Backbone:
        return self.rgb if name == "rgb" else self.flow

    def input_channels(self) -> dict[str, int]:
        return {"rgb": 3, "flow": 2 * self.flow_length}

    def inputs(self) -> dict[str, int | None]:
        """The inputs by name, in the order ``forward`` takes them, with their channels per snippet: each
        branch's ``[B, T, channels, H, W]`` and the ``mask`` ``[B, T]`` (None: no channel axis)."""
        channels = self.input_channels()
        return {**{name: channels[name] for name in self.branches}, "mask": None}

    def outputs(self) -> tuple[str, ...]:
        """The fields of :class:`JNAOutput` this model fills with tensors, for export: the fused logits, each
        branch's logits, the attention, then what its parts give beyond their kind's contract (``Part.outputs()``:
        ``spatial_attention``, ``branch_gate``)."""
        return ("logits", *(f"logits_{name}" for name in self.branches), "attention",
                *(name for kind in PART_KINDS for name in getattr(self, kind).outputs()))

    def describe(self) -> dict:
        """The model's parts and what they say of themselves (export metadata; JSON values)."""
        described = {"streams": self.streams, "backbone": self.backbone_name}
        for kind in PART_KINDS:
            described.update(getattr(self, kind).describe())
        described["parts"] = {kind: {"name": name, "options": self._described_options(kind, name, options)}
                              for kind, (name, options) in self.choices.items()}
        return described

    @staticmethod
    def _described_options(kind: str, name: str, options) -> dict:
        hidden = getattr(registry.lookup(kind, name), "UNDESCRIBED_OPTIONS", ())
        return {key: value for key, value in dataclasses.asdict(options).items() if key not in hidden}

    def scheduled_parameters(self) -> list[ScheduledParameters]:
        """The parameters the parts schedule on their own (learning-rate factor, warm-up), in the order of the
        optimiser groups (:data:`SCHEDULE_ORDER`)."""
        return [group for kind in SCHEDULE_ORDER for group in getattr(self, kind).scheduled_parameters()]

    def _check_inputs(self, given: dict, mask: torch.Tensor | None) -> tuple[int, int]:
        """The [B, T] of the inputs the model uses, after checking their shapes."""
        rgb, flow = given["rgb"], given["flow"]
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
        batch_shape = tuple(given[self.branches[0]].shape[:2])
        if mask is not None and tuple(mask.shape) != batch_shape:
            raise ValueError(f"mask: expected [B, T] = {list(batch_shape)}, got {tuple(mask.shape)}")
        return batch_shape

    def _snippets(self, x: torch.Tensor, branch: Backbone) -> torch.Tensor:
        """[B, T, C, H, W] -> [B*T, C, H, W], in the memory format of the backbone's weights."""
        x = x.flatten(0, 1)
        if branch.first_conv.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, rgb: torch.Tensor | None, flow: torch.Tensor | None,
                mask: torch.Tensor | None = None) -> JNAOutput:
        given = {"rgb": rgb, "flow": flow}
        batch, segments = self._check_inputs(given, mask)
        backbones = [self.branch(name) for name in self.branches]
        xs = tuple(b.stem(self._snippets(given[name], b)) for name, b in zip(self.branches, backbones))
        for layers in zip(*(b.stages() for b in backbones)):
            xs = tuple(layer(x) for (_, layer), x in zip(layers, xs))
            xs = self.sharing(layers[0][0], xs)
        vectors, maps = self.spatial_pooling(xs)
        features = tuple(v.view(batch, segments, -1) for v in vectors)
        pooled, attention = self.temporal_pooling(features, mask)
        # A fusion with outputs of its own (Part.outputs()) gives them as a fourth element, by name.
        logits, branch_logits, snippet_logits, *more = self.fusion(tuple(self.dropout(p) for p in pooled), features)
        named = dict(zip(self.branches, branch_logits))
        spatial_attention = None if maps is None else maps.view(batch, segments, *maps.shape[1:])
        return JNAOutput(logits, named.get("rgb"), named.get("flow"), attention, snippet_logits, mask,
                         spatial_attention, **(more[0] if more else {}))

    def loss(self, output: JNAOutput, target: torch.Tensor) -> torch.Tensor:
        """The fusion's loss (docs/design.md §2.5) plus each part's auxiliary term (the joint attention's
        snippet-evidence term), in float32."""
        loss = self.fusion.loss(output, target)
        for kind in PART_KINDS:
            if kind != "fusion":
                term = getattr(self, kind).auxiliary_loss(output, target)
                loss = loss if term is None else loss + term
        return loss

    def load_backbone_weights(self, path: str | os.PathLike) -> None:
        """Load an image-classification weight file of the backbone (torchvision's format for the ResNets) into
        each branch; a branch of other input channels (flow) gets its first conv by cross-modality averaging. The
        file's classifier is ignored. Nothing is loaded unless every branch fits."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(state).__name__}")
        adapted = {}
        for name in self.branches:
            try:
                adapted[name] = self.branch(name).image_weights(state)
            except ValueError as error:
                raise ValueError(f"{path}: not a torchvision {self.backbone_name} state dict: {error}") from None
        for name, branch_state in adapted.items():
            self.branch(name).load_state_dict(branch_state)


def build_model(model_config, num_classes: int, *, load_weights: bool = False) -> Network:
    """The network of ``model_config`` (a :class:`ModelConfig` or any object with its attributes: ``streams``,
    ``flow_length``, ``dropout``, ``op_backend`` and, for each kind of part, ``.name`` and ``.options``) for
    ``num_classes`` classes. ``load_weights``: load the backbone's ``weights`` file, when its options name one, into
    every branch (a new training run does; rebuilding a trained model from its checkpoint does not)."""
    model = Network(num_classes, model_config)
    weights = getattr(model_config.backbone.options, "weights", None)
    if load_weights and weights:
        model.load_backbone_weights(weights)
    return model
