"""Sliding windows over a long video (``Predictor.predict_long_video`` in jna_fast/inference.py, ``python -m
jna_fast.predict --window``): the option check, the windows' frames, and the typed results, a
:class:`WindowPrediction` per window and the :class:`LongVideoPrediction` of the video."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["AGGREGATION", "LongVideoPrediction", "WindowPrediction", "check_window_seconds", "window_bounds",
           "window_frames"]

AGGREGATION = "mean of the window probabilities"
"""How the windows' probabilities make the video's (:attr:`LongVideoPrediction.aggregation`)."""


def check_window_seconds(name: str, value: object) -> float:
    """``value`` as a float > 0 (seconds), or a ValueError naming the option ``name`` (--window, --stride).

    Args:
        name: the option's name, for the message (``"window"``, ``"stride"``).
        value: the number of seconds, as given (a number or a string).

    Returns:
        The seconds, a finite float > 0.

    Raises:
        ValueError: ``value`` is not a number, not finite, or not > 0.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expects a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name}: must be a finite number of seconds > 0, got {value!r}")
    return seconds


def window_frames(window: float, stride: float, fps: float) -> tuple[int, int]:
    """Frames per window and frames between window starts for ``window`` and ``stride`` seconds at ``fps``.

    Args:
        window: the window's length in seconds.
        stride: seconds between window starts.
        fps: the video's frame rate.

    Returns:
        ``(length, step)``: the nearest whole numbers of frames, at least 2 frames per window (one flow pair) and
        a stride of at least 1 frame.
    """
    return max(2, round(window * fps)), max(1, round(stride * fps))


def window_bounds(num_frames: int, length: int, stride: int) -> list[tuple[int, int]]:
    """The first frame and frame count of each window over a video of ``num_frames`` frames.

    Windows of ``length`` frames every ``stride`` frames from frame 0 while they fit, then, when frames are left
    after the last one, a window ending at the last frame (so every frame is seen); a video shorter than one window
    is one window.

    Args:
        num_frames: the video's frame count.
        length: frames per window (:func:`window_frames`).
        stride: frames between window starts.

    Returns:
        ``(first frame, frame count)`` of each window, in order.
    """
    if num_frames <= length:
        return [(0, num_frames)]
    bounds = [(first, length) for first in range(0, num_frames - length + 1, stride)]
    if bounds[-1][0] + length < num_frames:
        bounds.append((num_frames - length, length))
    return bounds


@dataclass
class WindowPrediction:
    """One window of a long video: its frames and times, its top-k classes, every class's probability and the
    attention the model put on each of its snippets.

    Attributes:
        index: the window's number, from 0.
        start: seconds: first frame / fps.
        end: seconds: (last frame + 1) / fps.
        first_frame: the window's first video frame (0-based).
        num_frames: the window's frame count.
        classes: the top-k class names, most probable first.
        class_indices: the top-k class indices, in the same order.
        probabilities: the probabilities of the top-k classes.
        scores: every class's probability (softmax averaged over the views), in class order.
        snippet_starts: 0-based first frame of each real snippet, in video frames.
        attention: the attention weight of each real snippet (sums to 1).
    """

    index: int
    start: float
    end: float
    first_frame: int
    num_frames: int
    classes: list[str]
    class_indices: list[int]
    probabilities: list[float]
    scores: list[float]
    snippet_starts: list[int]
    attention: list[float]


@dataclass
class LongVideoPrediction:
    """Sliding-window prediction of a long video (:func:`predict_long_video`); ``classes`` / ``probabilities``:
    the video-level top-k, ranked by the mean of the window probabilities (:data:`AGGREGATION`).

    Attributes:
        video: the video's path.
        fps: the video's frame rate.
        num_frames: the frames decoded.
        window: window length in seconds, as asked.
        stride: seconds between window starts, as asked.
        window_frames: frames per window as used (window * fps rounded, :func:`window_frames`).
        stride_frames: frames between window starts as used (stride * fps rounded).
        segments: snippets sampled per window.
        crops: test views per snippet.
        class_names: every class name, in class order (the index of ``WindowPrediction.scores``).
        windows: each window's prediction, in order.
        classes: the video-level top-k class names, most probable first.
        class_indices: their class indices.
        probabilities: their mean window probabilities.
        aggregation: how the windows make the video's probabilities (:data:`AGGREGATION`).
        max_buffered_frames: the most decoded frames held at once (the ring buffer's peak).
    """

    video: str
    fps: float
    num_frames: int
    window: float
    stride: float
    window_frames: int
    stride_frames: int
    segments: int
    crops: int
    class_names: list[str]
    windows: list[WindowPrediction]
    classes: list[str]
    class_indices: list[int]
    probabilities: list[float]
    aggregation: str = AGGREGATION
    max_buffered_frames: int = 0

    @property
    def duration(self) -> float:
        """The video's length in seconds (``num_frames / fps``)."""
        return self.num_frames / self.fps

    def to_dict(self) -> dict:
        """The JSON form of predictions.json (probabilities rounded to 5 decimals)."""
        out = dataclasses.asdict(self)
        out["duration"] = round(self.duration, 5)
        for window in out["windows"]:
            for key in ("probabilities", "scores", "attention"):
                window[key] = [round(v, 5) for v in window[key]]
            window["start"], window["end"] = round(window["start"], 5), round(window["end"], 5)
        out["probabilities"] = [round(v, 5) for v in out["probabilities"]]
        return out

    def __str__(self) -> str:
        lines = [f"{self.video}: {self.duration:.2f} s, {self.num_frames} frames at {self.fps:g} fps; "
                 f"{len(self.windows)} windows of {self.window:g} s every {self.stride:g} s"]
        width = max(len(name) for w in self.windows for name in w.classes[:1] or ["-"])
        shown = min(3, len(self.windows[0].classes)) if self.windows else 0
        lines.append(f"  {'start':>8} {'end':>8}  " + "  ".join(f"{'top ' + str(k + 1):<{width + 7}}"
                                                                for k in range(shown)).rstrip())
        for window in self.windows:
            tops = "  ".join(f"{name:<{width}} {p:6.1%}" for name, p in
                             zip(window.classes[:shown], window.probabilities[:shown]))
            lines.append(f"  {window.start:8.2f} {window.end:8.2f}  {tops}")
        lines.append(f"  video ({self.aggregation}):")
        lines += [f"  {p:6.1%}  {name}" for name, p in zip(self.classes, self.probabilities)]
        return "\n".join(lines)
