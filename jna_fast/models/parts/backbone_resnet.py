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
from ..resnet import ARCHITECTURES, ResNet


@dataclass(frozen=True)
class ResNetOptions:
    weights: str | None = option(None, "a torchvision ImageNet weight file of this ResNet, loaded into both branches "
                                       "(the flow branch's first conv by cross-modality averaging)", metavar="FILE")


class _ResNetPart(ResNet):
    DEPTH = 50  # each registered subclass sets its own
    Options = ResNetOptions
    # A file on the training machine that initialised the weights: not a property of the trained model, so not in
    # its description (an export's metadata would otherwise carry a local path).
    UNDESCRIBED_OPTIONS = ("weights",)

    def __init__(self, options: ResNetOptions = ResNetOptions(), in_channels: int = 3):
        super().__init__(self.DEPTH, in_channels=in_channels, num_classes=None)


# One registered part per depth the ResNet builds (resnet18 .. resnet152).
for _depth in ARCHITECTURES:
    register("backbone", f"resnet{_depth}")(
        type(f"ResNet{_depth}", (_ResNetPart,), {"DEPTH": _depth, "__module__": __name__}))
