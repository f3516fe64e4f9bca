"""What the loader yields (ClipBatch) and what it asks a backend to decode (ClipRequest)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .lists import VideoRecord
from .pyav import VideoInfo
from .rawframes import FrameFolder
from .transforms import Crop


@dataclass(frozen=True)
class ClipRequest:
    """One clip to decode: RGB frames ``starts`` [T] (0-based video frames; from the video when ``video`` is set,
    else from the img files of ``folder``, whose first img holds video frame ``first_frame``), flow fields
    ``flows`` [T, L] (0-based; read from ``folder``, or computed from the video's frames when ``folder`` is None),
    one crop for all of it. ``flow_size``: the (height, width) of the flow images (of the video, for online flow)."""

    record: VideoRecord
    starts: np.ndarray
    flows: np.ndarray
    mask: np.ndarray
    crop: Crop
    video: VideoInfo | None
    flow_size: tuple[int, int]
    folder: FrameFolder | None = None
    first_frame: int = 0

    @property
    def rgb_size(self) -> tuple[int, int]:
        return (self.video.height, self.video.width) if self.video is not None else self.flow_size


@dataclass
class ClipBatch:
    """A batch of B clips of T snippets: ``rgb`` float32 [B, T, 3, S, S] (ImageNet-normalised), ``flow`` float32
    [B, T, 2L, S, S] in [-1, 1] (interleaved x, y per flow field), ``mask`` bool [B, T] (False: padding snippet of a
    short video), ``label`` int64 [B], ``indices`` int64 [B, T] (0-based snippet start frames), ``video_ids``."""

    rgb: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    indices: torch.Tensor
    video_ids: list[str]

    def __len__(self) -> int:
        return len(self.video_ids)

    def to(self, device, non_blocking: bool = False) -> "ClipBatch":
        move = lambda tensor: tensor.to(device, non_blocking=non_blocking)  # noqa: E731
        return replace(self, rgb=move(self.rgb), flow=move(self.flow), mask=move(self.mask),
                       label=move(self.label), indices=move(self.indices))
