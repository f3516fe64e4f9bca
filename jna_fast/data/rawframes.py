"""The rawframes folder layout (TSN/mmaction2 naming): ``img_%05d.jpg`` RGB frames and ``flow_x_%05d.jpg`` /
``flow_y_%05d.jpg`` flow components, numbered from 1. A video of N frames has N-1 flow pairs; flow pair k (1-based
file number) is the motion from frame k to frame k+1."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2

from .errors import DataError

_NUMBERED = re.compile(r"^(img|flow_x|flow_y)_(\d+)\.jpg$")


def image_path(frames_dir: Path, frame: int) -> Path:
    """RGB frame at 0-based index ``frame``."""
    return frames_dir / f"img_{frame + 1:05d}.jpg"


def flow_paths(frames_dir: Path, flow: int) -> tuple[Path, Path]:
    """(x, y) component files of the 0-based flow field ``flow``."""
    return frames_dir / f"flow_x_{flow + 1:05d}.jpg", frames_dir / f"flow_y_{flow + 1:05d}.jpg"


@dataclass(frozen=True)
class FrameFolder:
    num_images: int
    num_flows: int
    height: int
    width: int


def _contiguous_count(numbers: list[int]) -> int:
    """Length of the run 1, 2, ..., n at the start of the sorted numbers (files after a gap are unusable)."""
    count = 0
    for number in sorted(numbers):
        if number != count + 1:
            break
        count += 1
    return count


def scan_frame_folder(frames_dir: Path) -> FrameFolder:
    """Counts the contiguous img / flow files and reads the frame size from the first flow image."""
    if not frames_dir.is_dir():
        raise DataError(f"{frames_dir}: rawframes folder not found (missing flow extraction?)")
    numbers: dict[str, list[int]] = {"img": [], "flow_x": [], "flow_y": []}
    with os.scandir(frames_dir) as entries:
        for entry in entries:
            match = _NUMBERED.match(entry.name)
            if match:
                numbers[match.group(1)].append(int(match.group(2)))
    counts = {name: _contiguous_count(found) for name, found in numbers.items()}
    if counts["flow_x"] != counts["flow_y"]:
        raise DataError(f"{frames_dir}: {counts['flow_x']} flow_x but {counts['flow_y']} flow_y files "
                        f"(half-written flow folder?)")
    if counts["flow_x"] == 0:
        raise DataError(f"{frames_dir}: no flow_x_00001.jpg / flow_y_00001.jpg (empty or missing flow)")
    first = flow_paths(frames_dir, 0)[0]
    header = cv2.imread(str(first), cv2.IMREAD_GRAYSCALE)
    if header is None:
        raise DataError(f"{first}: unreadable JPEG")
    return FrameFolder(counts["img"], counts["flow_x"], header.shape[0], header.shape[1])
