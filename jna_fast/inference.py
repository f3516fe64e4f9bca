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
import os
from collections import abc, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data, flow
from .builders import build_model, decode_short_side
from .checkpoint import CheckpointError, load_checkpoint, load_model_state
from .config import Config, config_from_dict
from .config.sections import EvalOptions
from .data.loader_settings import ClipSampling, Decoding, FlowSource
from .io.errors import DataError
from .long_video import (AGGREGATION, LongVideoPrediction, WindowPrediction, check_window_seconds, window_bounds,
                         window_frames)
from .metrics import ranked_classes
from .models import Network
from .options import default_of
from .runtime import autocast_context
from .visualize import snippet_pictures

__all__ = ["AGGREGATION", "LongVideoPrediction", "Predictor", "TEST_CROPS", "TEST_SEGMENTS", "VideoAnalysis",
           "VideoPrediction", "WindowPrediction", "analyse_video", "check_window_seconds", "predict_long_video",
           "predict_video", "window_bounds", "window_frames"]

# The test protocol's defaults (the configuration's eval.segments and eval.crops).
_PROTOCOL = {spec.name: default_of(spec) for spec in dataclasses.fields(EvalOptions)}
TEST_SEGMENTS: int = _PROTOCOL["segments"]
"""Snippets per video of the TSN test protocol (the configuration's ``eval.segments``)."""
TEST_CROPS: int = _PROTOCOL["crops"]
"""Crops per snippet of the test protocol (the configuration's ``eval.crops``): 1, 3 or 10."""


@dataclass
class Predictor:
    """A trained model and what its checkpoint says about it: the class names, the configuration it was trained
    with, and the data settings (crop size, flip policy, flow algorithm and bound, precision) that prepare a video
    as its training data was prepared."""

    model: Network
    """The network, in eval mode."""
    config: Config
    """The configuration it was trained with."""
    class_names: list[str]
    """The class names, by class index."""
    data_settings: dict
    """Crop size, flip policy, flow algorithm and bound, precision (None in a checkpoint without)."""

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Predictor":
        """The model saved by ``python -m jna_fast.train``, in eval mode on ``device``.

        Args:
            path: ``best.pt`` or ``last.pt`` of a run; read with ``torch.load(weights_only=True)``, so a file from
                a stranger cannot run code.
            device: where the model runs: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

        Returns:
            The predictor: the model, its class names, configuration and data settings.

        Raises:
            CheckpointError: a missing, foreign, truncated or mismatched file, or weights that are not finite
                (the message names the file and the entry); no model is half-loaded.
        """
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

    def predict(self, video_path: str | os.PathLike, *, top_k: int = 5, segments: int = TEST_SEGMENTS,
                crops: int = TEST_CROPS, device: str | torch.device | None = None) -> "VideoPrediction":
        """Classify one video file, its flow computed on the fly as the training data's was.

        Args:
            video_path: a video file any FFmpeg build decodes (resized on decode to the training frames' short side).
            top_k: how many classes to return, >= 1.
            segments: snippets sampled TSN-style over the whole video.
            crops: test views per snippet: 1, 3 or 10 (10: corners, centre and their mirror images).
            device: where the model runs; None: where it is.

        Returns:
            The top-k class names and probabilities, each snippet's first frame and attention weight (and the
            branch gate or the spatial maps, for a model that has them).

        Raises:
            FileNotFoundError: no such video file.
            DataError: a video that cannot be decoded, or is too short for one snippet.
            ValueError: probabilities that are not finite, or a checkpoint without data settings.
        """
        return predict_video(self, video_path, top_k=top_k, segments=segments, crops=crops, device=device)

    def analyse(self, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                device: str | torch.device | None = None) -> "VideoAnalysis":
        """:meth:`predict`'s prediction with the snippets' pictures for the attention strip
        (:func:`analyse_video`; same arguments and errors as :meth:`predict`)."""
        return analyse_video(self, video_path, top_k=top_k, segments=segments, crops=crops, device=device)

    def predict_long_video(self, video_path, **options) -> "LongVideoPrediction":
        """:func:`predict_long_video` with this predictor; ``options`` are its keyword arguments."""
        return predict_long_video(self, video_path, **options)

    def _settings(self, what: str) -> dict:
        if self.data_settings is None:
            raise ValueError(f"{what} needs the data settings (crop size, flow algorithm, flips) saved with the "
                             f"weights, and this checkpoint has none")
        return self.data_settings


@dataclass
class VideoPrediction:
    """The top-k classes of one video, and the attention the model put on each of its snippets.

    Attributes:
        video: the video's path.
        classes: the top-k class names, most probable first.
        class_indices: their class indices.
        probabilities: their probabilities: softmax of the fused scores, averaged over the views.
        snippet_starts: 0-based first frame of each real snippet.
        attention: the attention weight of each real snippet (sums to 1).
        branch_gate: the weights of the RGB and flow branches, averaged over the views, of a model whose fusion
            is branch_selection (each view's scores are its higher-weighted branch's); None for the other fusions.
    """

    video: str
    classes: list[str]
    class_indices: list[int]
    probabilities: list[float]
    snippet_starts: list[int]
    attention: list[float]
    branch_gate: list[float] | None = None

    def __str__(self) -> str:
        lines = [f"{self.video}:"]
        lines += [f"  {p:6.1%}  {name}" for name, p in zip(self.classes, self.probabilities)]
        peak = max(range(len(self.attention)), key=self.attention.__getitem__)
        lines.append(f"  most attended snippet: frame {self.snippet_starts[peak]} "
                     f"(weight {self.attention[peak]:.2f} of {len(self.attention)} snippets)")
        if self.branch_gate is not None:
            lines.append(f"  branch gate: RGB {self.branch_gate[0]:.2f}, flow {self.branch_gate[1]:.2f}")
        return "\n".join(lines)


@dataclass
class VideoAnalysis:
    """A prediction with what the attention strip shows: the pictures of each real snippet of the first view.

    Attributes:
        prediction: the video's :class:`VideoPrediction`.
        pictures: ``"rgb"``: uint8 ``[T, S, S, 3]``, ``"flow_magnitude"``: ``[T, S, S]`` (per stream present; T
            real snippets, S the crop size), and the spatial attention maps where the model gives them.
    """

    prediction: VideoPrediction
    pictures: dict


def predict_video(predictor: Predictor, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS,
                  crops: int = TEST_CROPS, device: str | torch.device | None = None) -> VideoPrediction:
    """Classify one video with a trained model: :meth:`Predictor.predict`, which documents the other arguments,
    the result and the errors.

    Args:
        predictor: the trained model and its checkpoint's settings (:meth:`Predictor.from_checkpoint`).
    """
    return _run(predictor, video_path, top_k=top_k, segments=segments, crops=crops, device=device,
                keep_pictures=False).prediction


def analyse_video(predictor: Predictor, video_path, *, top_k: int = 5, segments: int = TEST_SEGMENTS,
                  crops: int = TEST_CROPS, device: str | torch.device | None = None) -> VideoAnalysis:
    """:func:`predict_video`'s prediction, from the same computation, with the snippets' pictures for the
    attention strip (``jna_fast.visualize.attention_strip_figure``). Arguments and errors: :func:`predict_video`'s.

    Returns:
        The prediction and the pictures of its real snippets (:class:`VideoAnalysis`).
    """
    return _run(predictor, video_path, top_k=top_k, segments=segments, crops=crops, device=device, keep_pictures=True)


@torch.no_grad()
def _run(predictor: Predictor, video_path, *, top_k: int, segments: int, crops: int, device,
         keep_pictures: bool) -> VideoAnalysis:
    model, settings = predictor.model, predictor._settings("predict")
    video_path = Path(video_path)
    if not video_path.is_file():
        raise FileNotFoundError(f"{video_path}: no such video file")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = data.build_loader("video", video_path, subset="test", batch_size=1,
                               sampling=_test_sampling(predictor, segments, crops),
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
        snippet_starts=batch.indices[0].cpu()[real].tolist(), attention=attention[real].tolist(),
        branch_gate=None if out.branch_gate is None else batch.mean_over_views(out.branch_gate.float())[0].tolist())
    # The clip's first view (with one crop, the centre crop), its padding snippets left out.
    pictures = {}
    if keep_pictures:
        # The spatial attention maps, where the model gives them, go with the pictures they are drawn over.
        pictures = {name: value[real.numpy()]
                    for name, value in snippet_pictures(batch, 0, out.spatial_attention).items()}
    return VideoAnalysis(prediction, pictures)


def _test_sampling(predictor: Predictor, segments: int, crops: int) -> ClipSampling:
    """The test protocol's sampling of a video (or of a long video's window) for ``predictor``'s model: the
    evaluation's (ClipSampling, the one sampling path), with the checkpoint's crop size and flip policy."""
    settings = predictor._settings("predict")
    return ClipSampling(num_segments=segments, flow_length=predictor.model.flow_length, size=settings["size"],
                        flip=settings["flip"], num_crops=crops).for_subset("test")


# --- long videos: sliding windows (jna_fast/long_video.py), decoded in one streaming pass ------------------------
class _WindowScorer:
    """Scores one window's frames exactly as :func:`predict_video` scores a whole video: the window is sampled as
    a video of its own by the evaluation's sampling (:meth:`ClipSampling.sample`: TSN test starts, flow stacks
    inside it, the test crops), its flow computed online with the checkpoint's algorithm and bound, cut into the
    views as the loader cuts them (data.backends.clip_views) and given to the model in one call."""

    def __init__(self, predictor: Predictor, *, segments: int, crops: int, device, frame_size: tuple[int, int]):
        model, settings = predictor.model, predictor._settings("predict_long_video")
        self.model, self.device, self.frame_size = model, device, frame_size
        self.sampling = _test_sampling(predictor, segments, crops)
        self.precision = settings.get("precision", "fp32")
        # A model without a flow branch ignores the flow (Network._check_inputs): not computing it changes nothing.
        self.online_flow = (flow.OnlineFlow(settings["flow_algorithm"], settings["flow_bound"])
                            if model.flow is not None else None)

    @torch.no_grad()
    def __call__(self, frames: list) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        """(probabilities [classes], real snippet starts relative to the window, their attention) of a window
        given as its consecutive RGB frames."""
        clip = self.sampling.sample(len(frames), self.frame_size)
        flow_images = None
        if self.online_flow is not None:
            stacks = self.online_flow.stacks(dict(enumerate(frames)), clip.flows)
            flow_images = stacks.reshape(-1, *stacks.shape[2:])
        rgb_views, flow_views = data.clip_views([frames[int(i)] for i in clip.starts], flow_images, clip.crops,
                                                self.frame_size, self.frame_size, self.sampling.size,
                                                self.sampling.flow_length)
        rgb = torch.from_numpy(np.stack(rgb_views)).to(self.device)
        flow_stacks = None if flow_images is None else torch.from_numpy(np.stack(flow_views)).to(self.device)
        view_mask = torch.from_numpy(clip.mask).view(1, -1).expand(len(rgb_views), -1).to(self.device)
        with autocast_context(self.precision, self.device):
            out = self.model(rgb, flow_stacks, view_mask)
        probabilities = out.logits.float().softmax(-1).mean(0).cpu()
        attention = out.attention.float().mean(0).cpu()
        return probabilities, clip.starts[clip.mask], attention[torch.from_numpy(clip.mask)]


@torch.no_grad()
def predict_long_video(predictor: Predictor, video_path: str | os.PathLike, *, window: float = 2.0,
                       stride: float = 1.0, top_k: int = 5, segments: int = TEST_SEGMENTS, crops: int = TEST_CROPS,
                       device: str | torch.device | None = None,
                       on_window: abc.Callable[[WindowPrediction], object] | None = None) -> LongVideoPrediction:
    """Classify a long video window by window, each as :func:`predict_video` scores a video (docs/guides/predict.md).

    Args:
        predictor: the trained model and its checkpoint's settings (:meth:`Predictor.from_checkpoint`).
        video_path: the video file, decoded once, in order, at :attr:`Predictor.short_side`.
        window: seconds per window, > 0 (:func:`window_bounds`: a video shorter than one window is one window).
        stride: seconds between window starts, > 0.
        top_k: how many classes to return per window and for the video, >= 1.
        segments: snippets sampled per window.
        crops: test views per snippet: 1, 3 or 10.
        device: where the model runs; None: where it is.
        on_window: called with each :class:`WindowPrediction` as it is scored (progress in a demo); None: not.

    Returns:
        Each window's prediction, and the video's top-k by the mean of the windows' probabilities.

    Raises:
        FileNotFoundError: no such video file.
        DataError: no decodable frame, or a single one (optical flow needs 2).
        ValueError: ``window``, ``stride`` or ``top_k`` out of range, non-finite scores, or no data settings.
    """
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
    with data.VideoStream(video_path, short_side=predictor.short_side) as video:
        length, step = window_frames(window, stride, video.fps)
        scorer = _WindowScorer(predictor, segments=segments, crops=crops, device=device,
                               frame_size=(video.height, video.width))
        scored = _ScoredWindows(scorer, predictor.class_names, video_path, video.fps, top_k, on_window)
        buffer, peak = _score_while_decoding(video, length, step, scored)
        total = video.frames_read
    if total == 0:
        raise DataError(f"{video_path}: no decodable video frames")
    if total < 2:
        raise DataError(f"{video_path}: {total} frame; optical flow needs at least 2")
    last = window_bounds(total, length, step)[-1]
    windows = scored.windows
    if not windows or (windows[-1].first_frame, windows[-1].num_frames) != last:
        # The video is shorter than a window, or frames are left after the last full stride: the buffer holds
        # exactly the last window's frames.
        scored(list(buffer), last[0])
    names = predictor.class_names
    mean = torch.tensor([w.scores for w in windows]).mean(0)
    top = ranked_classes(mean.view(1, -1), top_k)[0].tolist()
    return LongVideoPrediction(
        video=str(video_path), fps=video.fps, num_frames=total, window=window, stride=stride,
        window_frames=length, stride_frames=step, segments=segments, crops=crops, class_names=list(names),
        windows=windows, classes=[names[i] for i in top], class_indices=top, probabilities=mean[top].tolist(),
        max_buffered_frames=peak)


def _score_while_decoding(video, length: int, step: int, scored: "_ScoredWindows") -> tuple[deque, int]:
    """Decode ``video`` once, in order, into a ring buffer of ``length`` frames, scoring each window of ``length``
    frames every ``step`` as soon as its last frame is decoded; (the buffer, the most frames it held)."""
    buffer: deque = deque(maxlen=length)  # the last `length` frames: every frame a pending window needs
    peak, next_first = 0, 0
    for index, frame in enumerate(video):
        buffer.append(frame)
        peak = max(peak, len(buffer))
        if index + 1 == next_first + length:
            scored(list(buffer), next_first)
            next_first += step
    return buffer, peak


class _ScoredWindows:
    """The windows of one long video scored so far (``windows``); calling it scores the next window."""

    def __init__(self, scorer: _WindowScorer, names: list[str], video_path: Path, fps: float, top_k: int,
                 on_window=None):
        self.scorer, self.names, self.video_path, self.fps = scorer, names, video_path, fps
        self.top_k, self.on_window = top_k, on_window
        self.windows: list[WindowPrediction] = []

    def __call__(self, frames: list, first: int) -> None:
        """Score the window of ``frames`` whose first frame is video frame ``first``."""
        probabilities, starts, attention = self.scorer(frames)
        if not bool(probabilities.isfinite().all()):
            raise ValueError(f"{self.video_path}: the model's scores of the window at frame {first} are not finite "
                             f"(NaN or inf), so there is no prediction to show")
        top = ranked_classes(probabilities.view(1, -1), self.top_k)[0].tolist()
        result = WindowPrediction(
            index=len(self.windows), start=first / self.fps, end=(first + len(frames)) / self.fps,
            first_frame=first, num_frames=len(frames), classes=[self.names[i] for i in top], class_indices=top,
            probabilities=probabilities[top].tolist(), scores=probabilities.tolist(),
            snippet_starts=(starts + first).tolist(), attention=attention.tolist())
        self.windows.append(result)
        if self.on_window is not None:
            self.on_window(result)
