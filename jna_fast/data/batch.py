"""What the loader yields (ClipBatch) and what it asks a backend to decode (ClipRequest)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..io.video import VideoInfo
from .lists import VideoRecord
from .rawframes import FrameFolder
from .transforms import Crop


@dataclass(frozen=True)
class ClipRequest:
    """One clip to decode, and its views. The frames (and flow) are decoded once and every view is cut from them.

    Attributes:
        record: the clip's video in the dataset index.
        starts: int64 ``[T]`` RGB frames (0-based video frames; from the video when ``video`` is set, else from the
            img files of ``folder``, whose first img holds video frame ``first_frame``).
        flows: int64 ``[T, L]`` flow fields (0-based; read from ``folder``, or computed from the video's frames
            when ``folder`` is None).
        mask: bool ``[T]``: False on a padding snippet of a short video.
        crops: one crop per view, each applied to all of the clip (a training clip has one; a test clip 1, 3, 5 or
            10, see transforms.tsn_test_crops).
        video: the video's stream information when the RGB (or the online flow) is decoded from it, else None.
        flow_size: the (height, width) of the flow images (for online flow, of the video's frames as decoded:
            resized to the loader's ``short_side``, and the RGB frames with them).
        folder: the rawframes folder, or None when nothing is read from one.
        first_frame: the video frame held by the folder's first img file.
    """

    record: VideoRecord
    starts: np.ndarray
    flows: np.ndarray
    mask: np.ndarray
    crops: tuple[Crop, ...]
    video: VideoInfo | None
    flow_size: tuple[int, int]
    folder: FrameFolder | None = None
    first_frame: int = 0

    @property
    def rgb_size(self) -> tuple[int, int]:
        """The (height, width) of the RGB frames: the video's own beside rawframes flow, else the flow's."""
        if self.video is not None and self.folder is not None:
            return self.video.height, self.video.width
        return self.flow_size


@dataclass
class ClipBatch:
    """A batch of B clips of T snippets seen through V views each (V = ``num_views``: 1 in training and with the
    single centre crop at test time).

    ``rgb`` and ``flow`` hold a clip's V views in adjacent rows (row b*V + v is view v of clip b), so
    ``model(rgb, flow, batch.view_mask())`` scores every view and :meth:`mean_over_views` averages them per clip.
    S is the crop size, L the flow length.

    Attributes:
        rgb: float32 ``[B*V, T, 3, S, S]``, ImageNet-normalised.
        flow: float32 ``[B*V, T, 2L, S, S]`` in [-1, 1] (interleaved x, y per flow field).
        mask: bool ``[B, T]`` (False: padding snippet of a short video).
        label: int64 ``[B]`` (-1 for kind="video", which has no labels).
        indices: int64 ``[B, T]``: 0-based snippet start frames.
        video_ids: the B clips' video ids.
        replaced: bool ``[B]``: True where the row is a stand-in for a clip skipped as bad data (on_error="skip"):
            another clip of the same shard, with its own label, so every rank keeps its step count; it is a
            repeat, so an evaluation must not count it (training may use it).
        num_views: V, views per clip.
    """

    rgb: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    indices: torch.Tensor
    video_ids: list[str]
    replaced: torch.Tensor
    num_views: int = 1

    def __len__(self) -> int:
        """B, the number of clips."""
        return len(self.video_ids)

    def view_mask(self) -> torch.Tensor:
        """The snippet mask of every row of ``rgb`` / ``flow``.

        Returns:
            bool ``[B*V, T]``: each clip's ``mask`` repeated for its views.
        """
        return self.mask.repeat_interleave(self.num_views, dim=0)

    def mean_over_views(self, per_view: torch.Tensor) -> torch.Tensor:
        """Per clip mean of a per-row tensor (e.g. softmax scores).

        Args:
            per_view: ``[B*V, ...]``, one row per view.

        Returns:
            ``[B, ...]``, same dtype.
        """
        return per_view.unflatten(0, (len(self), self.num_views)).mean(dim=1)

    def _map(self, move) -> "ClipBatch":
        return replace(self, rgb=move(self.rgb), flow=move(self.flow), mask=move(self.mask),
                       label=move(self.label), indices=move(self.indices), replaced=move(self.replaced))

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "ClipBatch":
        """The batch with its tensors on ``device`` (``Tensor.to``); ``non_blocking`` copies pinned memory
        asynchronously."""
        return self._map(lambda tensor: tensor.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "ClipBatch":
        """The batch in page-locked host memory (tensors already pinned are kept as they are), so that
        ``to("cuda", non_blocking=True)`` copies asynchronously. Needs CUDA."""
        return self._map(lambda tensor: tensor if tensor.is_pinned() else tensor.pin_memory())
