"""Rawframes folders as the field's tools write them: names, counts, and which video frame each file holds.

This is the one place that states the conventions (docs/concepts/data.md, "Rawframes from other tools", repeats
them for users).

Names. A folder holds RGB frames and the two components of each flow field as numbered image files. Their names
are Python format templates as in mmaction2: ``rgb_template`` takes the file number (default ``"img_{:05d}.jpg"``),
``flow_template`` takes the component (``"x"`` or ``"y"``) and then the file number (default
``"flow_{}_{:05d}.jpg"``, i.e. ``flow_x_00001.jpg``); ``start_index`` is the number of the first file (default 1,
mmaction2's ``start_index``). tsn-pytorch's ``x_00001.jpg`` / ``y_00001.jpg`` is ``flow_template="{}_{:05d}.jpg"``.

Counts and meaning. Flow file number ``start_index + k`` always holds flow field k (0-based), the motion from video
frame k to frame k+1; a video of N frames has N-1 flow fields. The RGB files come in two conventions, told apart
by counting the folder's files:

- N ``img`` files beside N-1 flow pairs (jna_fast's ``python -m jna_fast.flow extract``, open-mmlab denseflow and
  mmaction2's ``build_rawframes.py``, which runs denseflow once for the frames and once for the flow): img number
  ``start_index + f`` is video frame f.
- N-1 ``img`` files beside N-1 flow pairs (TSN's dense_flow ``extract_gpu``/``extract_cpu``, which encodes, for
  each flow pair, the later frame of the pair): img number ``start_index + k`` is video frame k+1. Video frame 0
  has no file.

Any other count of img files (when the RGB comes from them) is an error naming the folder and both counts.

Pairing. A snippet starting at video frame i is RGB frame i and flow fields i .. i+L-1 (sampling.py), whatever
the convention; a dense_flow folder therefore offers snippets from frame 1 on (its frame 0 is missing), and its
flow field 0 is not used when the RGB is read from the folder. (TSN itself pairs img k with flow k, i.e. the later
frame of the first flow, one frame off this rule.)

List files (kind="rawframes", ``frame_dir count label``). TSN's and mmaction2's list builders write the number of
files of one modality: the frames (N, mmaction2's RGB lists), the flow pairs (N-1, flow lists) or dense_flow's
img files (N-1). The count is checked against the folder: N-1 flow pairs accept a count of N (frames) or N-1
(flows); any other count is an error naming the list line and what the folder holds.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

import cv2

from ..cli import visible
from ..io.errors import DataError
from .jpeg import read_jpeg

DEFAULT_RGB_TEMPLATE = "img_{:05d}.jpg"
DEFAULT_FLOW_TEMPLATE = "flow_{}_{:05d}.jpg"
DEFAULT_START_INDEX = 1
FLOW_COMPONENTS = ("x", "y")

# Video frame held by the first img file: every frame on disk (jna_fast, denseflow, mmaction2) or from frame 1
# on (dense_flow: the later frame of each flow pair).
ALL_FRAMES, LATER_FRAMES = 0, 1
CONVENTION_NAMES = {ALL_FRAMES: "N img files for N-1 flow pairs (jna_fast / denseflow / mmaction2)",
                    LATER_FRAMES: "N-1 img files for N-1 flow pairs (TSN dense_flow)"}


def _template_pattern(template: str, argument: str, fields: tuple[str, ...]) -> re.Pattern:
    """A regex matching the names ``template`` formats to; ``fields`` names its positional fields in order
    ("component": x or y, "number": digits). Raises ValueError naming ``argument`` for a malformed template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{argument}={template!r} is not a format template: {error}") from None
    replacement = [(literal, field) for literal, field, _, _ in parsed]
    found = [field for _, field in replacement if field is not None]
    if len(found) != len(fields) or any(field not in ("", str(i)) for i, field in enumerate(found)):
        wanted = " and ".join({"component": "the component ('x'/'y')", "number": "the file number"}[f]
                              for f in fields)
        example = DEFAULT_FLOW_TEMPLATE if len(fields) == 2 else DEFAULT_RGB_TEMPLATE
        raise ValueError(f"{argument}={template!r} must have {len(fields)} positional field(s) '{{}}' taking "
                         f"{wanted}, in that order (e.g. {example!r})")
    if os.sep in template or (os.altsep and os.altsep in template):
        raise ValueError(f"{argument}={template!r} must be a file name, without a folder")
    groups = iter(fields)
    pattern = "".join(re.escape(literal) + ("" if field is None else
                                            "(x|y)" if next(groups) == "component" else r"(\d+)")
                      for literal, field in replacement)
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class RawframesNaming:
    """File names of a rawframes folder (see the module docstring).

    Attributes:
        rgb_template: the img files' name, a format template of the file number (``"img_{:05d}.jpg"``).
        flow_template: the flow files' name, a template of the component (``"x"``, ``"y"``) then the number
            (``"flow_{}_{:05d}.jpg"``; tsn-pytorch's: ``"{}_{:05d}.jpg"``).
        start_index: the number of the first file (mmaction2's ``start_index``), >= 0.

    Raises:
        ValueError: a negative ``start_index``, or a template that cannot format a file number.
    """

    rgb_template: str = DEFAULT_RGB_TEMPLATE
    flow_template: str = DEFAULT_FLOW_TEMPLATE
    start_index: int = DEFAULT_START_INDEX

    def __post_init__(self):
        if not isinstance(self.start_index, int) or self.start_index < 0:
            raise ValueError(f"start_index must be a non-negative integer, got {self.start_index!r}")
        object.__setattr__(self, "_rgb_pattern", _template_pattern(self.rgb_template, "rgb_template", ("number",)))
        object.__setattr__(self, "_flow_pattern",
                           _template_pattern(self.flow_template, "flow_template", ("component", "number")))
        try:
            self.rgb_name(0), self.flow_names(0)
        except (ValueError, TypeError, IndexError) as error:
            raise ValueError(f"rgb_template={self.rgb_template!r} / flow_template={self.flow_template!r} cannot "
                             f"format a file number: {error}") from None

    def rgb_name(self, position: int) -> str:
        """Name of the ``position``-th (0-based) img file."""
        return self.rgb_template.format(self.start_index + position)

    def flow_names(self, position: int) -> tuple[str, str]:
        """Names of the (x, y) files of the ``position``-th (0-based) flow field."""
        return tuple(self.flow_template.format(c, self.start_index + position) for c in FLOW_COMPONENTS)

    def scan(self, frames_dir: Path) -> tuple[int, int, int]:
        """Contiguous counts (img, flow_x, flow_y) of files numbered from ``start_index`` in ``frames_dir``."""
        numbers: dict[str, set[int]] = {"img": set(), "x": set(), "y": set()}
        with os.scandir(frames_dir) as entries:
            for entry in entries:
                name = entry.name
                match = self._rgb_pattern.match(name)
                if match and self.rgb_template.format(int(match.group(1))) == name:
                    numbers["img"].add(int(match.group(1)))
                    continue
                match = self._flow_pattern.match(name)
                if match and self.flow_template.format(match.group(1), int(match.group(2))) == name:
                    numbers[match.group(1)].add(int(match.group(2)))
        return tuple(self._contiguous(numbers[kind]) for kind in ("img", "x", "y"))

    def _contiguous(self, numbers: set[int]) -> int:
        """Length of the run start_index, start_index+1, ... (files after a gap are unusable)."""
        count = 0
        while self.start_index + count in numbers:
            count += 1
        return count


DEFAULT_NAMING = RawframesNaming()


@dataclass(frozen=True)
class FrameFolder:
    """A scanned rawframes folder: its file counts, the flow images' size and its naming."""

    frames_dir: Path
    num_images: int
    num_flows: int
    height: int
    width: int
    naming: RawframesNaming = DEFAULT_NAMING

    def flow_paths(self, flow: int) -> tuple[Path, Path]:
        """(x, y) files of the 0-based flow field ``flow`` (motion from video frame flow to flow+1)."""
        return tuple(self.frames_dir / name for name in self.naming.flow_names(flow))

    def image_path(self, frame: int, first_frame: int) -> Path:
        """img file of the 0-based video frame ``frame`` in a folder whose first img holds ``first_frame``."""
        if frame < first_frame:
            raise DataError(f"{self.frames_dir}: video frame {frame} has no img file (the first holds frame "
                            f"{first_frame})")
        return self.frames_dir / self.naming.rgb_name(frame - first_frame)

    def first_frame(self) -> int:
        """The video frame held by the first img file, from the counts (ALL_FRAMES or LATER_FRAMES)."""
        if self.num_images == self.num_flows + 1:
            return ALL_FRAMES
        if self.num_images == self.num_flows:
            return LATER_FRAMES
        first = self.frames_dir / self.naming.rgb_name(0)
        raise DataError(f"{self.frames_dir}: {self.num_images} img files ({first.name}, ...) beside {self.num_flows} "
                        f"flow pairs: neither {self.num_flows + 1} ({CONVENTION_NAMES[ALL_FRAMES]}) nor "
                        f"{self.num_flows} ({CONVENTION_NAMES[LATER_FRAMES]}); missing or extra files, or another "
                        f"rgb_template / start_index?")

    def frames_from_count(self, count: int, where: str) -> int:
        """The video's frame count N from a list file's count field, which counts frames (N) or flows (N-1)."""
        if count in (self.num_flows, self.num_flows + 1):
            return self.num_flows + 1
        raise DataError(f"{where}: count {count} does not match {self.frames_dir}, which holds {self.num_flows} flow "
                        f"pairs (and {self.num_images} img files): the count must be the frames "
                        f"({self.num_flows + 1}) or the flow pairs ({self.num_flows})")


def scan_frame_folder(frames_dir: Path, naming: RawframesNaming = DEFAULT_NAMING) -> FrameFolder:
    """Counts the contiguous img / flow files and reads the frame size from the first flow image."""
    if not frames_dir.is_dir():
        raise DataError(f"{visible(frames_dir)}: rawframes folder not found (missing flow extraction?)")
    num_images, num_x, num_y = naming.scan(frames_dir)
    first_x, first_y = (frames_dir / name for name in naming.flow_names(0))
    if num_x != num_y:
        raise DataError(f"{frames_dir}: {num_x} {first_x.name}... but {num_y} {first_y.name}... files "
                        f"(half-written flow folder?)")
    if num_x == 0:
        raise DataError(f"{frames_dir}: no {first_x.name} / {first_y.name} (empty or missing flow, or another "
                        f"flow_template / start_index?)")
    header = cv2.imdecode(read_jpeg(first_x), cv2.IMREAD_GRAYSCALE)
    if header is None:
        raise DataError(f"{first_x}: unreadable image")
    return FrameFolder(frames_dir, num_images, num_x, header.shape[0], header.shape[1], naming)
