"""ResNet-18/34/50/101/152 backbones whose state-dict keys match torchvision's ResNets exactly, so that a
torchvision ImageNet weight file (``resnet50-*.pth``) loads without renaming. :class:`ResNet` implements the backbone
interface (:class:`jna_fast.models.backbone.Backbone`); its registered parts are in ``models/parts/resnet.py``."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from .backbone import Backbone, cross_modality_conv1

__all__ = ["ARCHITECTURES", "STAGES", "ResNet", "cross_modality_conv1"]

# depth -> (block kind, blocks per stage)
ARCHITECTURES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGES = (1, 2, 3, 4)  # the residual stages, numbered as in the ResNet paper (conv2_x .. conv5_x)
STAGE_WIDTHS = (64, 128, 256, 512)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(Backbone):
    """A ResNet with torchvision's module names. ``in_channels`` is 3 for RGB, 2L for a flow stack;
    ``num_classes=None`` leaves out ``fc`` (a feature backbone)."""

    STAGES = STAGES
    IGNORED_WEIGHTS = ("fc.",)

    def __init__(self, depth: int = 50, in_channels: int = 3, num_classes: int | None = 1000):
        super().__init__()
        if depth not in ARCHITECTURES:
            raise ValueError(f"depth: expected one of {sorted(ARCHITECTURES)}, got {depth}")
        kind, counts = ARCHITECTURES[depth]
        block = BLOCKS[kind]
        self.depth = depth
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = 64
        for index, (width, count) in enumerate(zip(STAGE_WIDTHS, counts), start=1):
            stride = 1 if index == 1 else 2
            downsample = None
            if stride != 1 or in_ch != width * block.expansion:
                downsample = nn.Sequential(
                    _conv1x1(in_ch, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion)
                )
            blocks = [block(in_ch, width, stride, downsample)]
            in_ch = width * block.expansion
            blocks += [block(in_ch, width, 1, None) for _ in range(count - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.feature_dim = in_ch
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_ch, num_classes) if num_classes is not None else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stage_channels(self, stage: int) -> int:
        """Channels of the output of a stage (one of STAGES)."""
        return STAGE_WIDTHS[stage - 1] * BLOCKS[ARCHITECTURES[self.depth][0]].expansion

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.conv1

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def stages(self) -> Iterator[tuple[int, nn.Module]]:
        for index in STAGES:
            yield index, getattr(self, f"layer{index}")

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for _, layer in self.stages():
            x = layer(x)
        x = self.pool(x)
        return self.fc(x) if self.fc is not None else x

