"""The backbone interface: what the network asks of a branch's image feature extractor (docs/design.md §2.1, §2.7).

A backbone maps one image (an RGB frame, a stack of 2L flow fields) to a feature map, in stages: the network runs
``stem`` and then each stage of every branch in step, so that the sharing part can mix the branches after any stage,
and hands the last stage's output to the spatial pooling. ResNet (:mod:`jna_fast.models.resnet`) implements it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class Backbone(nn.Module):
    """A staged 2-D feature extractor.

    - ``in_channels``: channels of its input image ``[N, in_channels, H, W]``;
    - ``stem(x)``: the layers before the first stage;
    - ``stages()``: ``(stage number, module)`` in order, the numbers those of ``STAGES``;
      ``stage_channels(stage)``: the channels of that stage's output;
    - ``feature_dim``: the channels of the last stage's output, the spatial pooling's input;
    - ``first_conv``: the convolution that takes the image (the memory format of its weight is the input's; its
      weight is the one adapted when an RGB weight file is loaded into a branch of other input channels);
    - ``IGNORED_WEIGHTS``: key prefixes of an image-classification weight file that the backbone does not hold
      (its classifier).
    """

    STAGES: tuple[int, ...] = ()
    IGNORED_WEIGHTS: tuple[str, ...] = ()
    in_channels: int
    feature_dim: int

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stages(self) -> Iterator[tuple[int, nn.Module]]:
        raise NotImplementedError

    def stage_channels(self, stage: int) -> int:
        raise NotImplementedError

    @property
    def first_conv(self) -> nn.Conv2d:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output of images ``x``."""
        x = self.stem(x)
        for _, stage in self.stages():
            x = stage(x)
        return x

    def image_weights(self, state: dict) -> dict:
        """This backbone's state dict from an image-classification weight file's ``state`` (its classifier left
        out; the first conv adapted to ``in_channels`` by cross-modality averaging when the file's has other input
        channels). Raises ValueError saying what does not fit."""
        state = {k: v for k, v in state.items() if not k.startswith(self.IGNORED_WEIGHTS)}
        first = next(name for name, module in self.named_modules() if module is self.first_conv) + ".weight"
        expected = dict(self.state_dict())
        if first in state:
            # the file's first conv is an RGB one: compare every dimension but the input channels
            expected[first] = expected[first].new_empty(expected[first].shape[0], state[first].shape[1],
                                                        *expected[first].shape[2:])
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                      for k in expected if k in state and state[k].shape != expected[k].shape]
        if first in state and not mismatched and state[first].shape[1] != 3:
            mismatched.append(f"{first}: file {tuple(state[first].shape)}, expected 3 input channels (RGB)")
        if missing or unexpected or mismatched:
            raise ValueError(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                             f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
                             f"shape mismatches {mismatched[:5]}")
        if self.in_channels != state[first].shape[1]:
            state = {**state, first: cross_modality_conv1(state[first], self.in_channels)}
        return state


def cross_modality_conv1(rgb_weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """TSN's cross-modality initialisation: average the RGB filters over their 3 input channels and
    replicate the mean to every flow channel."""
    return rgb_weight.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1).contiguous()
