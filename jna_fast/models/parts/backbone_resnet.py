"""Backbone parts ``resnet18`` .. ``resnet152``: torchvision's ResNets (:class:`jna_fast.models.resnet.ResNet`,
the backbone interface of :mod:`jna_fast.models.backbone`), without their classifier.

Contract: built as ``cls(options, in_channels)`` for each branch (3 input channels for RGB, 2L for flow); its
``stages()`` are 1..4 (conv2_x .. conv5_x), its ``feature_dim`` 512 (18, 34) or 2048 (50, 101, 152). State-dict
keys are torchvision's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...options import option
from ..registry import register
from ..resnet import ResNet


@dataclass(frozen=True)
class ResNetOptions:
    weights: str | None = option(None, "a torchvision ImageNet weight file of this ResNet, loaded into both branches "
                                       "(the flow branch's first conv by cross-modality averaging)", metavar="FILE")


class _ResNetPart(ResNet):
    DEPTH = 50
    Options = ResNetOptions
    # A file on the training machine that initialised the weights: not a property of the trained model, so not in
    # its description (an export's metadata would otherwise carry a local path).
    UNDESCRIBED_OPTIONS = ("weights",)

    def __init__(self, options: ResNetOptions = ResNetOptions(), in_channels: int = 3):
        super().__init__(self.DEPTH, in_channels=in_channels, num_classes=None)


@register("backbone", "resnet18")
class ResNet18(_ResNetPart):
    DEPTH = 18


@register("backbone", "resnet34")
class ResNet34(_ResNetPart):
    DEPTH = 34


@register("backbone", "resnet50")
class ResNet50(_ResNetPart):
    DEPTH = 50


@register("backbone", "resnet101")
class ResNet101(_ResNetPart):
    DEPTH = 101


@register("backbone", "resnet152")
class ResNet152(_ResNetPart):
    DEPTH = 152
