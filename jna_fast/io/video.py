"""Video probing and frame decoding with PyAV (FFmpeg): the loader's PyAV backend (and its route for codecs that DALI
cannot decode on the device at hand), the flow extractor and prediction all decode through it.

Colour conversion: decoded YUV frames are turned into RGB the way DALI 2.4's video decoder does it (measured:
BT.601 matrix, the stream's range - limited for ``yuv*`` and full for ``yuvj*``/JPEG-range streams - and
bilinear, centre-sited chroma upsampling, computed in float and rounded), so that the DALI and PyAV paths give
the same pixels (up to a rounding step) rather than two different colour conversions.

Scaling on decode (``decode_frames(..., size=)``, ``VideoStream(..., short_side=)``): the planes of each decoded
frame are resized (an area filter when shrinking, bilinear when enlarging, as the flow extractor's ``--short-side``)
before the colour conversion, which then runs on the small frame: a large video never has a full-size RGB frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from .errors import DataError

# BT.601 luma weights of red and blue.
_KR, _KB = 0.299, 0.114
_PLANAR_8BIT_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
                    "yuv411p", "yuvj411p"}


def _yuv_to_rgb_matrix(full_range: bool) -> np.ndarray:
    """3x4 affine map (Y, U, V, 1) -> (R, G, B) in 0..255 units."""
    luma_scale, chroma_scale, luma_offset = (1.0, 1.0, 0.0) if full_range else (255 / 219, 255 / 224, 16.0)
    kg = 1.0 - _KR - _KB
    cr_to_r, cb_to_b = 2 * (1 - _KR), 2 * (1 - _KB)
    rows = np.array([[1.0, 0.0, cr_to_r],
                     [1.0, -_KB * cb_to_b / kg, -_KR * cr_to_r / kg],
                     [1.0, cb_to_b, 0.0]])
    linear = rows * np.array([luma_scale, chroma_scale, chroma_scale])
    offset = -linear @ np.array([luma_offset, 128.0, 128.0])
    return np.concatenate([linear, offset[:, None]], axis=1).astype(np.float32)


_MATRICES = {False: _yuv_to_rgb_matrix(False), True: _yuv_to_rgb_matrix(True)}


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: plane.height, : plane.width]


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` = (height, width) as the flow extractor's ``--short-side`` resizes its frames:
    an area filter when shrinking, bilinear when enlarging."""
    if image.shape[:2] == size:
        return image
    shrinking = size[0] < image.shape[0] or size[1] < image.shape[1]
    return cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def frame_to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """The RGB of a decoded frame (DALI's conversion, see the module docstring), resized on the way when asked.

    Each plane is resized before the conversion, so a large frame is never converted whole.

    Args:
        frame: a frame decoded by PyAV (8-bit planar YUV converted as DALI does; deeper or semi-planar YUV made
            planar 8-bit first; other formats through FFmpeg's rgb24).
        size: ``(H, W)`` of the result (area filter when shrinking, bilinear when enlarging); None: the frame's.

    Returns:
        uint8 ``[H, W, 3]`` RGB.
    """
    size = (frame.height, frame.width) if size is None else tuple(size)
    if frame.format.name not in _PLANAR_8BIT_YUV:
        if frame.format.name.startswith(("yuv", "nv", "p0", "p2")):
            frame = frame.reformat(format="yuv444p")  # deeper or semi-planar YUV: to planar 8-bit, same range
        else:
            return _resized(frame.to_ndarray(format="rgb24"), size)
    # Area averaging and bilinear interpolation are linear, as the conversion is (up to its rounding): resizing the
    # planes gives the pixels of resizing the converted frame.
    luma = _resized(_plane(frame, 0).astype(np.float32), size)
    chroma = [_resized(_plane(frame, i).astype(np.float32), size) for i in (1, 2)]
    full_range = frame.format.name.startswith("yuvj") or frame.color_range == 2
    rgb = cv2.transform(cv2.merge([luma, *chroma]), _MATRICES[full_range])
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def short_side_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) of a ``height x width`` frame resized so its short side is ``short_side`` pixels, the
    aspect ratio kept (each side rounded, at least 1); None keeps the size."""
    if not short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads of a video's first video stream.

    Attributes:
        codec: the codec's FFmpeg name (``"h264"``, ``"mpeg4"``, ...).
        height: the frame height (pixels).
        width: the frame width.
        num_frames: non-empty packets found by demuxing the whole file (each decodes to one frame).
    """

    codec: str
    height: int
    width: int
    num_frames: int


def _unreadable(path: Path, error: BaseException) -> DataError:
    return DataError(f"{path}: unreadable video ({type(error).__name__}: {error})")


def probe_video(path: Path) -> VideoInfo:
    """Codec, size and frame count by demuxing (no decoding); a truncated file shows fewer frames than its
    rawframes folder, or fails here.

    Args:
        path: the video file.

    Returns:
        The first video stream's codec, size and frame count.

    Raises:
        DataError: an unreadable file, no video stream, or no decodable frame.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream (truncated or not a video file)")
            stream = container.streams.video[0]
            num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
            context = stream.codec_context
            info = VideoInfo(context.name, context.height, context.width, num_frames)
    except (av.FFmpegError, OSError, IndexError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise _unreadable(path, error) from error
    if num_frames == 0 or info.height == 0 or info.width == 0:
        raise DataError(f"{path}: no decodable video frames")
    return info


def decode_frames(path: Path, indices: Sequence[int] | np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """The RGB frames at ``indices``, decoding sequentially up to the largest one.

    Args:
        path: the video file.
        indices: 0-based frame numbers (any order, repeats allowed; at least one).
        size: ``(H, W)`` the frames are resized to on decode; None: the video's.

    Returns:
        uint8 ``[len(indices), H, W, 3]`` RGB, in the order of ``indices``.

    Raises:
        DataError: an unreadable file, or one with fewer frames than the largest index needs.
    """
    wanted = sorted(set(int(i) for i in indices))
    last = wanted[-1]
    found: dict[int, np.ndarray] = {}
    position = -1
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                position += 1
                if position in wanted:
                    found[position] = frame_to_rgb(frame, size)
                if position == last:
                    break
    except (av.FFmpegError, OSError, IndexError, ValueError) as error:
        raise _unreadable(path, error) from error
    if position < last:
        raise DataError(f"{path}: truncated video: decoded {position + 1} frames, frame {last} (0-based) needed")
    return np.stack([found[int(i)] for i in indices])


class VideoStream:
    """A video's frames decoded once, in order, as uint8 RGB ``[H, W, 3]`` (:func:`frame_to_rgb`), without
    holding more than the frame being yielded: ``with VideoStream(path) as video: for rgb in video: ...``.

    Iterating twice raises RuntimeError: a second pass opens a new stream. A decoding error while iterating raises
    DataError, naming the frames read.

    Args:
        path: the video file (opened here; closed by ``close`` or the ``with`` block).
        short_side: frames resized on decode so their short side is this many pixels (aspect ratio kept); None:
            the video's size.

    Attributes:
        fps: the stream's average frame rate (frames are timed by their index: frame i is at i / fps seconds).
        height: the height of the frames yielded.
        width: the width of the frames yielded.
        frames_read: the frames yielded so far.

    Raises:
        DataError: an unreadable file, no video stream, no frame rate, or (with ``short_side``) no frame size.
    """

    def __init__(self, path: str | os.PathLike, short_side: int | None = None):
        self.path = Path(path)
        self.frames_read = 0
        self._iterated = False
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, IndexError, ValueError) as error:
            raise _unreadable(self.path, error) from error
        try:
            if not self._container.streams.video:
                raise DataError(f"{self.path}: no video stream (truncated or not a video file)")
            stream = self._container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate or float(rate) <= 0:
                raise DataError(f"{self.path}: the video stream declares no frame rate, so its frames cannot be "
                                f"timed")
            self.rate = rate  # a Fraction: the annotated copy is written at exactly this rate
            self.fps = float(rate)
            context = stream.codec_context
            if short_side is not None and not (context.height and context.width):
                raise DataError(f"{self.path}: the video stream declares no frame size, so its frames cannot be "
                                f"scaled on decode")
            self.height, self.width = short_side_size(context.height, context.width, short_side)
            self._decoded_size = None if short_side is None else (self.height, self.width)
        except BaseException:
            self._container.close()
            raise

    def __iter__(self):
        if self._iterated:
            raise RuntimeError(f"{self.path}: a VideoStream is decoded once; open a new one for another pass")
        self._iterated = True
        try:
            for frame in self._container.decode(video=0):
                rgb = frame_to_rgb(frame, self._decoded_size)
                self.frames_read += 1
                yield rgb
        except (av.FFmpegError, OSError, IndexError, ValueError) as error:
            raise DataError(f"{self.path}: unreadable video after {self.frames_read} frames "
                            f"({type(error).__name__}: {error})") from error

    def close(self) -> None:
        """Closes the file."""
        self._container.close()

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
