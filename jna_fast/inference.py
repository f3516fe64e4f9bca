"""Prediction with a trained model: :class:`Predictor` (``Predictor.from_checkpoint(path).predict(video)``, and
``python -m jna_fast.predict``) sits above the model: it holds the model with what its checkpoint says about it (the
class names, the training configuration, the data settings), which the model itself knows nothing of.

The video is decoded at the scale of the training frames (:attr:`Predictor.short_side`, whatever the camera's
resolution) and its flow computed on the fly (jna_fast/flow/online.py) with the algorithm and bound of the training
data (saved in the checkpoint), then sampled and cropped exactly as the evaluation does (the TSN test protocol of
the configuration's eval section: T evenly spaced snippets, 1/3/10 crops), through the same loader.

Long videos (:meth:`Predictor.predict_long_video`, ``python -m jna_fast.predict --window``): windows of a few
seconds every stride, each sampled and scored as a short video is, from a single streaming decode that holds one
window's frames at most; the pictures and the annotated copy are in jna_fast/visualize.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .builders import build_model, decode_short_side
from .checkpoint import CheckpointError, load_checkpoint, load_model_state
from .config import Config, config_from_dict
from .config.sections import EvalOptions
from .data import ClipSampling, Decoding, FlowSource, build_loader
from .data.backends import clip_views
from .data.sampling import flow_stack_indices, tsn_snippet_starts
from .data.transforms import DEFAULT_TEST_CROP_SCALE, tsn_test_crops
from .flow.online import OnlineFlow
from .io import video as video_io
from .io.errors import DataError
from .metrics import ranked_classes
from .models import JNA
from .options import default_of
from .runtime import autocast_context
from .visualize import snippet_pictures

# The test protocol's defaults (the configuration's eval.segments and eval.crops).
_PROTOCOL = {spec.name: default_of(spec) for spec in dataclasses.fields(EvalOptions)}
TEST_SEGMENTS, TEST_CROPS = _PROTOCOL["segments"], _PROTOCOL["crops"]


@dataclass
class Predictor:
    """A trained model and what its checkpoint says about it: the class names, the configuration it was trained
    with, and the data settings (crop size, flip policy, flow algorithm and bound, precision) that prepare a video
    as its training data was prepared."""

    model: JNA
    config: Config
    class_names: list[str]
    data_settings: dict

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Predictor":
        """The model saved by ``python -m jna_fast.train`` (``best.pt`` or ``last.pt``), in eval mode on
        ``device``. A foreign, truncated or mismatched file raises :class:`jna_fast.checkpoint.CheckpointError`;
        no model is half-loaded."""
        state = load_checkpoint(path)
        try:
            cfg = config_from_dict(state["config"], f"{path}: saved configuration")
        except ValueError as error:
            raise CheckpointError(str(error)) from None
        model = build_model(cfg, len(state["class_names"]))
        load_model_state(model, state["model"], path)
        return cls(model.eval().to(device), cfg, list(state["class_names"]), state.get("data"))

    @property
    def short_side(self) -> int:
        """The short side (pixels) every video's frames are resized to as they are decoded: the training frames'
        (builders.decode_short_side), so that the crops and the flow (in pixels) have the training data's
        scale."""
        return decode_short_side(self._settings("predict"), self.config)

    def predict(self, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                device: str | torch.device | None = None) -> "VideoPrediction":
        """Classify one video file: the top-k class names, their probabilities and the attention on each
        snippet."""
        return predict_video(self, video_path, top_k=top_k, segments=segments, crops=crops, device=device)

    def analyse(self, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                device: str | torch.device | None = None) -> "VideoAnalysis":
        """:meth:`predict`'s prediction with the snippets' pictures for the attention strip."""
        return analyse_video(self, video_path, top_k=top_k, segments=segments, crops=crops, device=device)

    def predict_long_video(self, video_path, **options) -> "LongVideoPrediction":
        """:func:`predict_long_video` with this predictor."""
        return predict_long_video(self, video_path, **options)

    def _settings(self, what: str) -> dict:
        if self.data_settings is None:
            raise ValueError(f"{what} needs the data settings (crop size, flow algorithm, flips) saved with the "
                             f"weights, and this checkpoint has none")
        return self.data_settings


@dataclass
class VideoPrediction:
    """The top-k classes of one video, and the attention the model put on each of its snippets."""

    video: str
    classes: list[str]                 # the top-k class names, most probable first
    class_indices: list[int]
    probabilities: list[float]         # softmax of the fused scores, averaged over the views
    snippet_starts: list[int]          # 0-based first frame of each snippet
    attention: list[float]             # the attention weight of each snippet (sums to 1)

    def __str__(self) -> str:
        lines = [f"{self.video}:"]
        lines += [f"  {p:6.1%}  {name}" for name, p in zip(self.classes, self.probabilities)]
        peak = max(range(len(self.attention)), key=self.attention.__getitem__)
        lines.append(f"  most attended snippet: frame {self.snippet_starts[peak]} "
                     f"(weight {self.attention[peak]:.2f} of {len(self.attention)} snippets)")
        return "\n".join(lines)


@dataclass
class VideoAnalysis:
    """A prediction with what the attention strip shows: the pictures of each real snippet of the first view."""

    prediction: VideoPrediction
    pictures: dict                     # "rgb": uint8 [T, S, S, 3], "flow_magnitude": [T, S, S] (per stream present)


def predict_video(predictor: Predictor, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS,
                  crops: int = TEST_CROPS, device: str | torch.device | None = None) -> VideoPrediction:
    """Classify one video with a trained model (:meth:`Predictor.from_checkpoint`)."""
    return _run(predictor, video_path, top_k=top_k, segments=segments, crops=crops, device=device,
                keep_pictures=False).prediction


def analyse_video(predictor: Predictor, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS,
                  crops: int = TEST_CROPS, device: str | torch.device | None = None) -> VideoAnalysis:
    """:func:`predict_video`'s prediction, from the same computation, with the snippets' pictures for the
    attention strip (``jna_fast.visualize.attention_strip_figure``)."""
    return _run(predictor, video_path, top_k=top_k, segments=segments, crops=crops, device=device, keep_pictures=True)


@torch.no_grad()
def _run(predictor: Predictor, video_path, *, top_k: int, segments: int, crops: int, device,
         keep_pictures: bool) -> VideoAnalysis:
    model, settings = predictor.model, predictor._settings("predict")
    video_path = Path(video_path)
    if not video_path.is_file():
        raise FileNotFoundError(f"{video_path}: no such video file")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = build_loader("video", video_path, subset="test", batch_size=1,
                          sampling=ClipSampling(num_segments=segments, flow_length=model.flow_length,
                                                size=settings["size"], flip=settings["flip"], num_crops=crops),
                          decoding=Decoding(backend="pyav", device="cpu", on_error="raise", prefetch=0,
                                            short_side=predictor.short_side),
                          flow=FlowSource.online(settings["flow_algorithm"], settings["flow_bound"]))
    model.eval()
    batch = next(iter(loader)).to(device)
    with autocast_context(settings.get("precision", "fp32"), device):
        out = model(batch.rgb, batch.flow, batch.view_mask())
    probabilities = batch.mean_over_views(out.logits.float().softmax(-1))[0].cpu()
    if not bool(probabilities.isfinite().all()):
        raise ValueError(f"{video_path}: the model's scores are not finite (NaN or inf), so there is no "
                         f"prediction to show")
    attention = batch.mean_over_views(out.attention.float())[0].cpu()
    real = batch.mask[0].cpu().bool()
    top = ranked_classes(probabilities.view(1, -1), top_k)[0].tolist()
    prediction = VideoPrediction(
        video=str(video_path), classes=[predictor.class_names[i] for i in top],
        class_indices=top, probabilities=probabilities[top].tolist(),
        snippet_starts=batch.indices[0].cpu()[real].tolist(), attention=attention[real].tolist())
    # The clip's first view (with one crop, the centre crop), its padding snippets left out.
    pictures = ({name: value[real.numpy()] for name, value in snippet_pictures(batch, 0).items()}
                if keep_pictures else {})
    return VideoAnalysis(prediction, pictures)


# --- long videos: sliding windows, decoded in one streaming pass ----------------------------------------------
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


class _WindowScorer:
    """Scores one window's frames exactly as :func:`predict_video` scores a whole video: the window is sampled as
    a video of its own (TSN test starts, flow stacks inside it), its flow computed online with the checkpoint's
    algorithm and bound, cut into the same test crops (data.backends.clip_views) and given to the model in one
    call."""

    def __init__(self, predictor: Predictor, *, segments: int, crops: int, device, frame_size: tuple[int, int]):
        model, settings = predictor.model, predictor._settings("predict_long_video")
        self.model, self.segments, self.device, self.frame_size = model, segments, device, frame_size
        self.size, self.flow_length = settings["size"], model.flow_length
        self.precision = settings.get("precision", "fp32")
        self.crops = tsn_test_crops(*frame_size, DEFAULT_TEST_CROP_SCALE, crops, settings["flip"])
        # A model without a flow branch ignores the flow (JNA._check_inputs): not computing it changes nothing.
        self.online_flow = (OnlineFlow(settings["flow_algorithm"], settings["flow_bound"])
                            if model.flow is not None else None)

    @torch.no_grad()
    def __call__(self, frames: list) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        """(probabilities [classes], real snippet starts relative to the window, their attention) of a window
        given as its consecutive RGB frames."""
        count = len(frames)
        starts, mask = tsn_snippet_starts(count, self.segments, self.flow_length, train=False)
        flow_images = None
        if self.online_flow is not None:
            flows = flow_stack_indices(starts, self.flow_length, count - 1)
            stacks = self.online_flow.stacks(dict(enumerate(frames)), flows)
            flow_images = stacks.reshape(-1, *stacks.shape[2:])
        rgb_views, flow_views = clip_views([frames[int(i)] for i in starts], flow_images, self.crops,
                                           self.frame_size, self.frame_size, self.size, self.flow_length)
        rgb = torch.from_numpy(np.stack(rgb_views)).to(self.device)
        flow = None if flow_images is None else torch.from_numpy(np.stack(flow_views)).to(self.device)
        view_mask = torch.from_numpy(mask).view(1, -1).expand(len(rgb_views), -1).to(self.device)
        with autocast_context(self.precision, self.device):
            out = self.model(rgb, flow, view_mask)
        probabilities = out.logits.float().softmax(-1).mean(0).cpu()
        attention = out.attention.float().mean(0).cpu()
        return probabilities, starts[mask], attention[torch.from_numpy(mask)]


@torch.no_grad()
def predict_long_video(predictor: Predictor, video_path, *, window: float = 2.0, stride: float = 1.0, top_k: int = 5,
                       segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                       device: str | torch.device | None = None, on_window=None) -> LongVideoPrediction:
    """Classify a long video window by window, with a trained model (:meth:`Predictor.from_checkpoint`).

    Windows of ``window`` seconds start every ``stride`` seconds (:func:`window_bounds`; a video shorter than one
    window is one window, scored exactly as :func:`predict_video` scores it). Each window is sampled and scored
    as a short video is (``segments`` snippets, ``crops`` test views, online flow with the checkpoint's
    algorithm). The video is decoded once, in order, its frames resized to :attr:`Predictor.short_side` as they
    are decoded, into a ring buffer of one window's frames; a window is scored as soon as its last frame is
    decoded, so memory grows neither with the video's length nor with its resolution. The video-level result is
    the mean of the windows' probabilities. ``on_window(WindowPrediction)``, when given, is called as each window
    is scored (progress in a demo)."""
    model = predictor.model
    predictor._settings("predict_long_video")
    window, stride = check_window_seconds("window", window), check_window_seconds("stride", stride)
    if int(top_k) < 1:
        raise ValueError(f"top_k: must be >= 1, got {top_k}")
    video_path = Path(video_path)
    if not video_path.is_file():
        raise FileNotFoundError(f"{video_path}: no such video file")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    names = predictor.class_names
    windows: list[WindowPrediction] = []
    total = None

    with video_io.VideoStream(video_path, short_side=predictor.short_side) as video:
        length, step = window_frames(window, stride, video.fps)
        scorer = _WindowScorer(predictor, segments=segments, crops=crops, device=device,
                               frame_size=(video.height, video.width))
        buffer: deque = deque(maxlen=length)  # the last `length` frames: every frame a pending window needs
        peak = 0

        def score(first: int) -> None:
            frames = list(buffer)
            probabilities, starts, attention = scorer(frames)
            if not bool(probabilities.isfinite().all()):
                raise ValueError(f"{video_path}: the model's scores of the window at frame {first} are not finite "
                                 f"(NaN or inf), so there is no prediction to show")
            top = ranked_classes(probabilities.view(1, -1), top_k)[0].tolist()
            result = WindowPrediction(
                index=len(windows), start=first / video.fps, end=(first + len(frames)) / video.fps,
                first_frame=first, num_frames=len(frames), classes=[names[i] for i in top], class_indices=top,
                probabilities=probabilities[top].tolist(), scores=probabilities.tolist(),
                snippet_starts=(starts + first).tolist(), attention=attention.tolist())
            windows.append(result)
            if on_window is not None:
                on_window(result)

        next_first = 0
        for index, frame in enumerate(video):
            buffer.append(frame)
            peak = max(peak, len(buffer))
            if index + 1 == next_first + length:
                score(next_first)
                next_first += step
        total = video.frames_read
    if total == 0:
        raise DataError(f"{video_path}: no decodable video frames")
    if total < 2:
        raise DataError(f"{video_path}: {total} frame; optical flow needs at least 2")
    last = window_bounds(total, length, step)[-1]
    if not windows or (windows[-1].first_frame, windows[-1].num_frames) != last:
        # The video is shorter than a window, or frames are left after the last full stride: the buffer holds
        # exactly the last window's frames.
        score(last[0])
    mean = torch.tensor([w.scores for w in windows]).mean(0)
    top = ranked_classes(mean.view(1, -1), top_k)[0].tolist()
    return LongVideoPrediction(
        video=str(video_path), fps=video.fps, num_frames=total, window=window, stride=stride,
        window_frames=length, stride_frames=step, segments=segments, crops=crops, class_names=list(names),
        windows=windows, classes=[names[i] for i in top], class_indices=top, probabilities=mean[top].tolist(),
        max_buffered_frames=peak)
