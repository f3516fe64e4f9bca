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


def check_window_seconds(name: str, value) -> float:
    """``value`` as a float > 0 (seconds), or a ValueError naming the option ``name`` (--window, --stride)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expects a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name}: must be a finite number of seconds > 0, got {value!r}")
    return seconds


def window_frames(window: float, stride: float, fps: float) -> tuple[int, int]:
    """(frames per window, frames between window starts) for ``window`` and ``stride`` seconds at ``fps``: the
    nearest whole numbers, at least 2 frames per window (one flow pair) and a stride of at least 1 frame."""
    return max(2, round(window * fps)), max(1, round(stride * fps))


def window_bounds(num_frames: int, length: int, stride: int) -> list[tuple[int, int]]:
    """(first frame, frame count) of each window over a video of ``num_frames`` frames: windows of ``length``
    frames every ``stride`` frames from frame 0 while they fit, then, when frames are left after the last one, a
    window ending at the last frame (so every frame is seen); a video shorter than one window is one window."""
    if num_frames <= length:
        return [(0, num_frames)]
    bounds = [(first, length) for first in range(0, num_frames - length + 1, stride)]
    if bounds[-1][0] + length < num_frames:
        bounds.append((num_frames - length, length))
    return bounds


@dataclass
class WindowPrediction:
    """One window of a long video: its frames and times, its top-k classes, every class's probability and the
    attention the model put on each of its snippets."""

    index: int
    start: float                       # seconds: first frame / fps
    end: float                         # seconds: (last frame + 1) / fps
    first_frame: int
    num_frames: int
    classes: list[str]                 # the top-k class names, most probable first
    class_indices: list[int]
    probabilities: list[float]         # of the top-k classes
    scores: list[float]                # every class's probability (softmax averaged over the views)
    snippet_starts: list[int]          # 0-based first frame of each real snippet, in video frames
    attention: list[float]             # the attention weight of each real snippet (sums to 1)


@dataclass
class LongVideoPrediction:
    """Sliding-window prediction of a long video (:func:`predict_long_video`); ``classes`` / ``probabilities``:
    the video-level top-k, ranked by the mean of the window probabilities (:data:`AGGREGATION`)."""

    video: str
    fps: float
    num_frames: int
    window: float                      # seconds, as asked
    stride: float
    window_frames: int                 # as used: window * fps and stride * fps rounded
    stride_frames: int
    segments: int
    crops: int
    class_names: list[str]
    windows: list[WindowPrediction]
    classes: list[str]
    class_indices: list[int]
    probabilities: list[float]
    aggregation: str = AGGREGATION
    max_buffered_frames: int = 0      # the most decoded frames held at once (the ring buffer's peak)

    @property
    def duration(self) -> float:
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
