"""Crop/flip sampling and the value mappings shared by every backend (docs/design.md §6.3, §6.5).

One :class:`Crop` is drawn per clip and applied to every snippet of both streams, so RGB and flow stay spatially
aligned. It is defined in the pixels of a reference frame size (the rawframes' size) and rescaled to a stream whose
frames have another size (RGB decoded from the original video when the flow was extracted after a resize), so
both streams always see the same part of the scene.

- train: TSN multi-scale crop: crop height and width are drawn from ``scales`` times the short side (1, .875, .75,
  .66) with at most one step between them, placed at one of the four corners or the centre; horizontal flip with
  probability 1/2 (never when the dataset's labels depend on left/right: ``flip=False``); then resized to
  ``size x size``.
- test (TSN protocol, :func:`tsn_test_crops`): square windows of ``test_crop_scale`` (0.875, i.e. TSN's
  resize-256-centre-crop-224) times the short side, resized to ``size x size``: 1 view = the centre; 3 views = the
  two ends and the centre of the long side (centred on the short side); 10 views = the four corners and the centre,
  then the same five mirrored (5 views when flipping is off).

Values: RGB becomes ``(x/255 - mean) / std`` with the ImageNet mean/std. A flow JPEG value v becomes
``(v - 127.5) / 127.5``, in [-1, 1], with 127.5 (zero motion, between the codes 127 and 128) at 0; multiply by the
extraction bound (20) for pixels. Flipping a clip mirrors every image and negates the x components (``255 - v`` on
the JPEG value, ``-x`` on the float), as the motion is mirrored too. Flow is not rescaled by the crop's resize
factor (the TSN convention).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .options import TEST_CROP_COUNTS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel (R, G, B) mean of the RGB normalisation ``(x/255 - mean) / std``."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel (R, G, B) standard deviation of the RGB normalisation."""
FLOW_CENTRE = 127.5
"""The flow JPEG value of zero motion: a value v becomes ``(v - 127.5) / 127.5``, in [-1, 1]."""
TRAIN_SCALES = (1.0, 0.875, 0.75, 0.66)
"""The training crop's sides, as fractions of the frame's short side (TSN multi-scale crop)."""
MAX_SCALE_DISTORTION = 1
DEFAULT_TEST_CROP_SCALE = 0.875


@dataclass(frozen=True)
class Crop:
    """A crop window ``[top, top+height) x [left, left+width)`` in a ``frame_height x frame_width`` frame, and a
    horizontal flip flag.

    Attributes:
        frame_height: the reference frame's height (pixels) the window is defined in.
        frame_width: the reference frame's width.
        top: the window's first row.
        left: the window's first column.
        height: the window's height.
        width: the window's width.
        flip: whether the crop is mirrored (and the flow's x components negated).
    """

    frame_height: int
    frame_width: int
    top: int
    left: int
    height: int
    width: int
    flip: bool

    def roi(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The window ``(y0, x0, y1, x1)`` in the pixels of a stream whose frames are ``height x width``.

        Args:
            height: the stream's frame height.
            width: the stream's frame width.

        Returns:
            The window's corners as floats, scaled from the reference frame to this one.
        """
        sy, sx = height / self.frame_height, width / self.frame_width
        return (self.top * sy, self.left * sx, (self.top + self.height) * sy, (self.left + self.width) * sx)


def sample_train_crop(frame_height: int, frame_width: int, rng: np.random.Generator,
                      scales: tuple[float, ...] = TRAIN_SCALES, flip: bool = True) -> Crop:
    """A random TSN multi-scale crop; mirrored with probability 1/2 when ``flip`` (the flip coin is drawn either
    way, so switching flipping off leaves every clip's crop window unchanged).

    Args:
        frame_height: the frame's height (pixels).
        frame_width: the frame's width.
        rng: the generator of the draws.
        scales: the crop sides, as fractions of the short side; height and width at most one step apart.
        flip: allow the mirror (False where labels depend on left/right).

    Returns:
        The crop, at one of the four corners or the centre.
    """
    base = min(frame_height, frame_width)
    sizes = [max(int(base * scale), 1) for scale in scales]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= MAX_SCALE_DISTORTION]
    crop_h, crop_w = pairs[rng.integers(len(pairs))]
    free_y, free_x = frame_height - crop_h, frame_width - crop_w
    positions = [(0, 0), (0, free_x), (free_y, 0), (free_y, free_x), (free_y // 2, free_x // 2)]
    top, left = positions[rng.integers(len(positions))]
    mirrored = bool(rng.integers(2))
    return Crop(frame_height, frame_width, top, left, crop_h, crop_w, flip and mirrored)


def _test_side(frame_height: int, frame_width: int, scale: float) -> int:
    if not 0 < scale <= 1:
        raise ValueError(f"test_crop_scale must be in (0, 1], got {scale}")
    return max(int(min(frame_height, frame_width) * scale), 1)


def centre_crop(frame_height: int, frame_width: int, scale: float = DEFAULT_TEST_CROP_SCALE) -> Crop:
    """The centred square test window of ``scale`` times the short side, not mirrored.

    Args:
        frame_height: the frame's height (pixels).
        frame_width: the frame's width.
        scale: the window's side as a fraction of the short side, in (0, 1].

    Returns:
        The crop.

    Raises:
        ValueError: ``scale`` not in (0, 1].
    """
    side = _test_side(frame_height, frame_width, scale)
    return Crop(frame_height, frame_width, (frame_height - side) // 2, (frame_width - side) // 2, side, side, False)


def tsn_view_count(num_crops: int, flip: bool = True) -> int:
    """Views per clip of :func:`tsn_test_crops`: ``num_crops``, or 5 for 10 crops without flipping.

    Args:
        num_crops: 1, 3 or 10.
        flip: whether the test views include the mirrored ones.

    Returns:
        The number of views.

    Raises:
        ValueError: ``num_crops`` not 1, 3 or 10.
    """
    if num_crops not in TEST_CROP_COUNTS:
        raise ValueError(f"num_crops must be one of {TEST_CROP_COUNTS}, got {num_crops}")
    return 5 if num_crops == 10 and not flip else num_crops


def tsn_test_crops(frame_height: int, frame_width: int, scale: float = DEFAULT_TEST_CROP_SCALE, num_crops: int = 1,
               flip: bool = True) -> tuple[Crop, ...]:
    """The TSN test views of a frame (see the module doc): square windows of ``scale`` times the short side.

    Args:
        frame_height: the frame's height (pixels).
        frame_width: the frame's width.
        scale: the windows' side as a fraction of the short side, in (0, 1].
        num_crops: 1, 3 or 10.
        flip: add the mirrored views (10 crops only).

    Returns:
        The views, in this order: 1 -> (centre,); 3 -> (start, centre, end) along the long side; 10 -> (top-left,
        top-right, bottom-left, bottom-right, centre) and, when ``flip``, the same five mirrored.

    Raises:
        ValueError: ``num_crops`` not 1, 3 or 10, or ``scale`` not in (0, 1].
    """
    tsn_view_count(num_crops, flip)
    side = _test_side(frame_height, frame_width, scale)
    free_y, free_x = frame_height - side, frame_width - side
    window = lambda top, left, mirrored=False: Crop(frame_height, frame_width, top, left, side, side,  # noqa: E731
                                                    mirrored)
    centre = window(free_y // 2, free_x // 2)
    if num_crops == 1:
        return (centre,)
    if num_crops == 3:
        if frame_width >= frame_height:
            return window(free_y // 2, 0), centre, window(free_y // 2, free_x)
        return window(0, free_x // 2), centre, window(free_y, free_x // 2)
    five = (window(0, 0), window(0, free_x), window(free_y, 0), window(free_y, free_x), centre)
    if not flip:
        return five
    return five + tuple(replace(crop, flip=True) for crop in five)


def normalise_rgb(frames: np.ndarray, flip: bool) -> np.ndarray:
    """uint8 ``[T, S, S, 3]`` -> float32 ``[T, 3, S, S]``, ImageNet-normalised, mirrored when ``flip``."""
    if flip:
        frames = frames[:, :, ::-1]
    scaled = frames.astype(np.float32).transpose(0, 3, 1, 2)
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255
    return (scaled - mean) / std


def flow_channel_signs(flow_length: int, flip: bool) -> np.ndarray:
    """Per channel sign of a flow stack (interleaved x, y, x, y, ...): x is negated by a flip."""
    signs = np.ones(2 * flow_length, np.float32)
    if flip:
        signs[0::2] = -1.0
    return signs


def normalise_flow(stack: np.ndarray, flow_length: int, flip: bool) -> np.ndarray:
    """uint8 ``[T, 2L, S, S]`` (interleaved x, y) -> float32 in [-1, 1], mirrored and x-negated when ``flip``."""
    if flip:
        stack = stack[..., ::-1]
    signs = flow_channel_signs(flow_length, flip).reshape(1, -1, 1, 1) / FLOW_CENTRE
    return (stack.astype(np.float32) - FLOW_CENTRE) * signs
