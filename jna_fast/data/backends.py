"""Decoding backends: each turns ClipRequests into the rgb / flow tensors of a batch.

- :class:`PyAVBackend`: PyAV for video frames, OpenCV for JPEG rawframes and crop/resize, NumPy for the rest;
  runs clips in a thread pool (FFmpeg and OpenCV release the GIL). Needs no DALI. The only backend of online flow
  (jna_fast/flow/online.py: OpenCV estimators on the clip's decoded frames, or nvof through DALI on a GPU).
- :class:`DaliBackend`: DALI pipelines (dali_pipeline.py) for JPEG decoding, crop/resize/flip/normalisation, and
  video decoding for the codecs DALI decodes on the device (probed once per codec); PyAV decodes the other codecs
  and feeds the frames to a DALI pipeline, so every clip gets the same DALI augmentation.

Every rawframes JPEG is checked (jpeg.py) before either backend decodes it: a damaged one fails its clip with a
DataError, like any other bad input.

``decode(requests)`` returns ``(rgb, flow, failures)``: the tensors hold the views of the clips that did not fail,
in request order (``[clips * views, T, ...]``, a clip's views adjacent); ``failures`` maps a failed request's
position to its message (which names the file). With ``pin_memory`` the CPU outputs are allocated page-locked, so
the batch goes to a GPU with an asynchronous copy and no staging copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

from ..flow.online import OnlineFlow, frames_for_flows
from ..io.errors import DataError
from ..io.video import decode_frames
from .batch import ClipRequest
from .dali_pipeline import DaliRunner, dali_decodes, dali_device_id, dali_error_summary
from .jpeg import read_jpeg
from .transforms import FLOW_CENTRE, Crop, flow_channel_signs, normalise_flow, normalise_rgb


def crop_and_resize(image: np.ndarray, roi: tuple[float, float, float, float], size: int) -> np.ndarray:
    """OpenCV crop + resize of one ``[H, W]`` or ``[H, W, C]`` uint8 image (area filter when shrinking, as an
    antialiased resize does; bilinear when enlarging)."""
    y0, x0, y1, x1 = (int(round(v)) for v in roi)
    window = image[y0:y1, x0:x1]
    if window.shape[0] == size and window.shape[1] == size:
        return np.ascontiguousarray(window)
    shrinking = window.shape[0] > size or window.shape[1] > size
    return cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def host_tensor(shape, pin_memory: bool) -> torch.Tensor:
    """An uninitialised float32 CPU tensor, page-locked when ``pin_memory``."""
    return torch.empty(shape, dtype=torch.float32, pin_memory=pin_memory)


def _read_bytes(path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DataError(f"{path}: missing or unreadable file ({error.strerror})") from None


def _read_image(path, flags: int, size: tuple[int, int]) -> np.ndarray:
    image = cv2.imdecode(read_jpeg(path, size), flags)
    if image is None:
        raise DataError(f"{path}: undecodable JPEG")
    return image


def _flow_files(request: ClipRequest):
    """The flow image paths of a clip in output channel order: for each snippet, x_i, y_i, x_{i+1}, y_{i+1}, ..."""
    return [path for flow in request.flows.reshape(-1) for path in request.folder.flow_paths(int(flow))]


def _image_files(request: ClipRequest):
    """The img paths of a clip's RGB frames, one per snippet."""
    return [request.folder.image_path(int(frame), request.first_frame) for frame in request.starts]


def rgb_frames_uint8(request: ClipRequest) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] of a clip, from its video (PyAV) or its rawframes img files (OpenCV)."""
    if request.video is not None:
        return decode_frames(request.record.video_path, request.starts)
    return np.stack([_read_image(path, cv2.IMREAD_COLOR_RGB, request.rgb_size) for path in _image_files(request)])


def online_clip_uint8(request: ClipRequest, online_flow: OnlineFlow) -> tuple[np.ndarray, np.ndarray]:
    """RGB frames [T, H, W, 3] and flow stacks [T, 2L, H, W] (uint8, or float32 codes when not quantised) of a
    clip whose flow is computed from its video's frames, all decoded in one pass (and resized on decode to the
    request's ``flow_size``)."""
    needed = np.union1d(request.starts, frames_for_flows(request.flows))
    decoded = decode_frames(request.record.video_path, needed, size=request.flow_size)
    frames = {int(index): frame for index, frame in zip(needed, decoded)}
    rgb = np.stack([frames[int(index)] for index in request.starts])
    return rgb, online_flow.stacks(frames, request.flows)


def read_flow_images(request: ClipRequest) -> list[np.ndarray]:
    """The greyscale flow images [h, w] of a clip read from its rawframes folder, in channel order."""
    return [_read_image(path, cv2.IMREAD_GRAYSCALE, request.flow_size) for path in _flow_files(request)]


def clip_views(frames: Sequence[np.ndarray], flow_images: Sequence[np.ndarray] | np.ndarray | None,
               crops: Sequence[Crop], rgb_size: tuple[int, int], flow_size: tuple[int, int], size: int,
               flow_length: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The views of one clip, one per crop, cropped, resized and normalised.

    One resize per crop window: a mirrored view reuses its unmirrored twin's. Shared by the loader and the
    long-video prediction (jna_fast/inference.py), so both cut and normalise a clip the same way.

    Args:
        frames: the snippets' RGB frames, uint8 ``[H, W, 3]`` each (T of them).
        flow_images: the flow images, T * 2L greyscale uint8 ``[h, w]``, a snippet's stack in channel order; None
            for a model without a flow branch.
        crops: the views' crops (:class:`Crop`).
        rgb_size: ``(H, W)`` of the RGB frames.
        flow_size: ``(h, w)`` of the flow images.
        size: S, the side of the resized views.
        flow_length: L.

    Returns:
        ``(rgb_views, flow_views)``: per crop, RGB float32 ``[T, 3, S, S]`` (ImageNet-normalised) and flow float32
        ``[T, 2L, S, S]`` in [-1, 1] (None each when ``flow_images`` is None).
    """
    num_snippets = len(frames)
    windows: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}
    rgb_views, flow_views = [], []
    for crop in crops:
        window = (crop.top, crop.left, crop.height, crop.width)
        if window not in windows:
            rgb_roi, flow_roi = crop.roi(*rgb_size), crop.roi(*flow_size)
            rgb = np.stack([crop_and_resize(frame, rgb_roi, size) for frame in frames])
            flow = (None if flow_images is None else
                    np.stack([crop_and_resize(image, flow_roi, size) for image in flow_images])
                    .reshape(num_snippets, 2 * flow_length, size, size))
            windows[window] = rgb, flow
        rgb, flow = windows[window]
        rgb_views.append(normalise_rgb(rgb, crop.flip))
        flow_views.append(None if flow is None else normalise_flow(flow, flow_length, crop.flip))
    return rgb_views, flow_views


class PyAVBackend:
    """``online_flow`` (an OnlineFlow): compute every clip's flow from its video's frames instead of reading it.
    ``memory`` (a memory_cache.MemoryCache): take every clip's frames and flow from it (each video decoded once)."""

    name = "pyav"

    def __init__(self, size: int, flow_length: int, num_threads: int, pin_memory: bool = False,
                 online_flow: OnlineFlow | None = None, memory=None):
        self.size, self.flow_length, self.pin_memory, self.online_flow = size, flow_length, pin_memory, online_flow
        self.memory = memory
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="jna_fast_data")

    def _clip(self, request: ClipRequest) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The clip's views: RGB [T, 3, S, S] and flow [T, 2L, S, S] per crop, from one decode of its frames (and
        of its flow: read from the rawframes folder, or computed online once for all views) and one resize per
        window: a mirrored view reuses its unmirrored twin's."""
        size = self.size
        if self.memory is not None:
            frames, flow_images = self.memory.pixels(request)
        elif request.folder is None:
            frames, flow_stacks = online_clip_uint8(request, self.online_flow)
            flow_images = flow_stacks.reshape(-1, *flow_stacks.shape[2:])
        else:
            frames = rgb_frames_uint8(request)
            flow_images = read_flow_images(request)
        return clip_views(frames, flow_images, request.crops, request.rgb_size, request.flow_size, size,
                          self.flow_length)

    def _try_clip(self, request: ClipRequest):
        try:
            return self._clip(request)
        except DataError as error:
            return error

    def decode(self, requests: list[ClipRequest]):
        results = list(self._pool.map(self._try_clip, requests))
        failures = {i: str(r) for i, r in enumerate(results) if isinstance(r, DataError)}
        views = [view for r in results if not isinstance(r, DataError) for view in zip(*r)]
        if not views:
            return None, None, failures
        rgb = host_tensor((len(views), *views[0][0].shape), self.pin_memory)
        flow = host_tensor((len(views), *views[0][1].shape), self.pin_memory)
        for row, (rgb_view, flow_view) in enumerate(views):
            rgb[row] = torch.from_numpy(rgb_view)
            flow[row] = torch.from_numpy(flow_view)
        return rgb, flow, failures


def _roi_arrays(crop, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    y0, x0, y1, x1 = crop.roi(height, width)
    return np.array([y0, x0], np.float32), np.array([y1, x1], np.float32)


class _View:
    """The per-sample DALI arguments of one view (crop) of a clip."""

    def __init__(self, request: ClipRequest, crop, flow_length: int):
        self.rgb_roi = _roi_arrays(crop, *request.rgb_size)
        self.flow_roi = _roi_arrays(crop, *request.flow_size)
        self.mirror = np.array(int(crop.flip), np.int32)
        self.flow_std = [np.array([FLOW_CENTRE * sign], np.float32)
                         for sign in flow_channel_signs(flow_length, crop.flip)]


class _GatheredClip:
    """A clip's DALI inputs, read from disk (and decoded by PyAV when its codec needs it), and its views."""

    def __init__(self, request: ClipRequest, route: str, flow_length: int):
        self.request, self.route = request, route
        self.views = [_View(request, crop, flow_length) for crop in request.crops]
        self.flow_bytes = [read_jpeg(path, request.flow_size) for path in _flow_files(request)]
        if route == "video":
            self.rgb_inputs = {"encoded": [_read_bytes(request.record.video_path)],
                               "frames": [request.starts.astype(np.int32)]}
        elif route == "frames":
            self.rgb_inputs = {"pixels": [decode_frames(request.record.video_path, request.starts)]}
        else:
            self.rgb_inputs = {"encoded": [read_jpeg(path, request.rgb_size) for path in _image_files(request)]}


class DaliBackend:
    name = "dali"

    def __init__(self, size: int, num_segments: int, flow_length: int, batch_size: int, device: str,
                 num_threads: int, seed: int, num_views: int = 1, pin_memory: bool = False):
        self.size, self.num_segments, self.flow_length, self.device = size, num_segments, flow_length, device
        self.num_views, self.pin_memory = num_views, pin_memory and device == "cpu"
        device_id = dali_device_id() if device == "gpu" else None
        self.torch_device = torch.device("cuda", device_id) if device == "gpu" else torch.device("cpu")
        images = batch_size * num_segments
        self.runner = DaliRunner(device, size, {"video": batch_size, "frames": batch_size, "jpeg_rgb": images,
                                                "jpeg_flow": images * 2 * flow_length}, num_threads, seed,
                                 device_id, num_views)
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="jna_fast_data")

    def route(self, request: ClipRequest) -> str:
        """How the clip's RGB is decoded: 'video' (DALI), 'frames' (PyAV feeding DALI) or 'jpeg_rgb'."""
        if request.video is None:
            return "jpeg_rgb"
        return "video" if dali_decodes(request.video.codec, request.record.video_path, self.device) else "frames"

    def _gather(self, request: ClipRequest):
        try:
            return _GatheredClip(request, self.route(request), self.flow_length)
        except DataError as error:
            return error

    def _empty(self, *shape) -> torch.Tensor:
        if self.device == "cpu":
            return host_tensor(shape, self.pin_memory)
        return torch.empty(shape, dtype=torch.float32, device=self.torch_device)

    def _view_inputs(self, clips: list[_GatheredClip], roi: str, repeat: int) -> dict[str, list[np.ndarray]]:
        """The per-view arguments of the samples of ``clips``, each repeated for the clip's ``repeat`` samples;
        ``roi``: "rgb_roi" or "flow_roi"."""
        inputs = {}
        for v in range(self.num_views):
            inputs[f"roi_start_{v}"] = [getattr(c.views[v], roi)[0] for c in clips for _ in range(repeat)]
            inputs[f"roi_end_{v}"] = [getattr(c.views[v], roi)[1] for c in clips for _ in range(repeat)]
            inputs[f"mirror_{v}"] = [c.views[v].mirror for c in clips for _ in range(repeat)]
        return inputs

    def _clip_major(self, views: torch.Tensor) -> torch.Tensor:
        """[V, n, ...] (the pipelines' view-major outputs) -> [n * V, ...] with a clip's views adjacent."""
        if self.num_views == 1:
            return views[0]
        rows = self._empty(views.shape[1], self.num_views, *views.shape[2:])
        rows.copy_(views.transpose(0, 1))
        return rows.flatten(0, 1)

    def _run(self, clips: list[_GatheredClip]) -> tuple[torch.Tensor, torch.Tensor]:
        """The DALI pipelines on a list of gathered clips, each decoded once for all its views (RuntimeError from
        DALI on undecodable data)."""
        n, views, t, channels, s = len(clips), self.num_views, self.num_segments, 2 * self.flow_length, self.size
        flow = self._empty(views, n, t, channels, s, s)
        flow_images = t * channels
        inputs = self._view_inputs(clips, "flow_roi", flow_images)
        inputs["encoded"] = [b for clip in clips for b in clip.flow_bytes]
        for v in range(views):
            inputs[f"std_{v}"] = [std for clip in clips for _ in range(t) for std in clip.views[v].flow_std]
        self.runner.run("jpeg_flow", inputs, flow.view(views, n * flow_images, 1, s, s))
        rgb = self._empty(views, n, t, 3, s, s)
        routes = sorted({clip.route for clip in clips})
        for route in routes:
            rows = [i for i, clip in enumerate(clips) if clip.route == route]
            group = [clips[i] for i in rows]
            inputs = self._view_inputs(group, "rgb_roi", t if route == "jpeg_rgb" else 1)
            inputs.update({name: [sample for clip in group for sample in clip.rgb_inputs[name]]
                           for name in group[0].rgb_inputs})
            target = rgb if len(routes) == 1 else self._empty(views, len(group), t, 3, s, s)
            # jpeg_rgb yields one [3, S, S] image per snippet; the video routes one [T, 3, S, S] clip per sample.
            self.runner.run(route, inputs,
                            target.view(views, len(group) * t, 3, s, s) if route == "jpeg_rgb" else target)
            if target is not rgb:
                rgb[:, torch.as_tensor(rows, device=rgb.device)] = target
        return self._clip_major(rgb), self._clip_major(flow)

    def decode(self, requests: list[ClipRequest]):
        gathered = list(self._pool.map(self._gather, requests))
        failures = {i: str(g) for i, g in enumerate(gathered) if isinstance(g, DataError)}
        good = [g for g in gathered if not isinstance(g, DataError)]
        if not good:
            return None, None, failures
        try:
            rgb, flow = self._run(good)
        except RuntimeError:
            # Locate the clip(s) DALI cannot decode by running them one at a time.
            outputs = []
            for position, clip in zip((i for i, g in enumerate(gathered) if not isinstance(g, DataError)), good):
                try:
                    outputs.append(self._run([clip]))
                except RuntimeError as error:
                    record = clip.request.record
                    culprit = record.video_path if clip.route == "video" else record.frames_dir
                    failures[position] = f"{culprit}: DALI failed to decode it ({dali_error_summary(error)})"
            if not outputs:
                return None, None, failures
            rgb, flow = torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])
        return rgb, flow, failures
