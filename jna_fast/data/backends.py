"""Decoding backends: each turns ClipRequests into the rgb / flow tensors of a batch.

- :class:`PyAVBackend`: PyAV for video frames, OpenCV for JPEG rawframes and crop/resize, NumPy for the rest;
  runs clips in a thread pool (FFmpeg and OpenCV release the GIL). Needs no DALI. The only backend of online flow
  (jna_fast/flow/online.py: OpenCV estimators on the clip's decoded frames, or nvof through DALI on a GPU).
- :class:`DaliBackend`: DALI pipelines (dali_pipeline.py) for JPEG decoding, crop/resize/flip/normalisation, and
  video decoding for the codecs DALI decodes on the device (probed once per codec); PyAV decodes the other codecs
  and feeds the frames to a DALI pipeline, so every clip gets the same DALI augmentation.

``decode(requests)`` returns ``(rgb, flow, failures)``: the tensors hold the clips that did not fail, in request
order; ``failures`` maps a failed request's position to its message (which names the file).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

from ..flow.online import OnlineFlow, frames_for_flows
from .batch import ClipRequest
from .dali_pipeline import DaliRunner, dali_decodes, dali_error_summary
from .errors import DataError
from .pyav import decode_frames
from .transforms import FLOW_CENTRE, crop_and_resize, flow_channel_signs, normalise_flow, normalise_rgb


def _read_image(path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DataError(f"{path}: missing or unreadable JPEG")
    return image


def _read_bytes(path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DataError(f"{path}: missing or unreadable file ({error.strerror})") from None


def _flow_files(request: ClipRequest):
    """The flow image paths of a clip in output channel order: for each snippet, x_i, y_i, x_{i+1}, y_{i+1}, ..."""
    return [path for flow in request.flows.reshape(-1) for path in request.folder.flow_paths(int(flow))]


def _image_files(request: ClipRequest):
    """The img paths of a clip's RGB frames, one per snippet."""
    return [request.folder.image_path(int(frame), request.first_frame) for frame in request.starts]


def _rgb_frames_uint8(request: ClipRequest) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] of a clip, from its video (PyAV) or its rawframes img files (OpenCV)."""
    if request.video is not None:
        return decode_frames(request.record.video_path, request.starts)
    return np.stack([_read_image(path, cv2.IMREAD_COLOR_RGB) for path in _image_files(request)])


def _online_clip_uint8(request: ClipRequest, online_flow: OnlineFlow) -> tuple[np.ndarray, np.ndarray]:
    """RGB frames [T, H, W, 3] and flow stacks [T, 2L, H, W] (uint8, or float32 codes when not quantised) of a
    clip whose flow is computed from its video's frames, all decoded in one pass."""
    needed = np.union1d(request.starts, frames_for_flows(request.flows))
    decoded = decode_frames(request.record.video_path, needed)
    frames = {int(index): frame for index, frame in zip(needed, decoded)}
    rgb = np.stack([frames[int(index)] for index in request.starts])
    return rgb, online_flow.stacks(frames, request.flows)


class PyAVBackend:
    """``online_flow`` (an OnlineFlow): compute every clip's flow from its video's frames instead of reading it."""

    name = "pyav"

    def __init__(self, size: int, flow_length: int, num_threads: int, online_flow: OnlineFlow | None = None):
        self.size, self.flow_length, self.online_flow = size, flow_length, online_flow
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="jna_fast_data")

    def _clip(self, request: ClipRequest) -> tuple[np.ndarray, np.ndarray]:
        crop, size = request.crop, self.size
        if request.folder is None:
            frames, flow_images = _online_clip_uint8(request, self.online_flow)
            flow_images = flow_images.reshape(-1, *flow_images.shape[2:])
        else:
            frames = _rgb_frames_uint8(request)
            flow_images = [_read_image(path, cv2.IMREAD_GRAYSCALE) for path in _flow_files(request)]
        rgb_roi = crop.roi(*request.rgb_size)
        rgb = np.stack([crop_and_resize(frame, rgb_roi, size) for frame in frames])
        flow_roi = crop.roi(*request.flow_size)
        flow = np.stack([crop_and_resize(image, flow_roi, size) for image in flow_images])
        flow = flow.reshape(len(request.starts), 2 * self.flow_length, size, size)
        return normalise_rgb(rgb, crop.flip), normalise_flow(flow, self.flow_length, crop.flip)

    def _try_clip(self, request: ClipRequest):
        try:
            return self._clip(request)
        except DataError as error:
            return error

    def decode(self, requests: list[ClipRequest]):
        results = list(self._pool.map(self._try_clip, requests))
        failures = {i: str(r) for i, r in enumerate(results) if isinstance(r, DataError)}
        good = [r for r in results if not isinstance(r, DataError)]
        rgb = torch.from_numpy(np.stack([r[0] for r in good])) if good else None
        flow = torch.from_numpy(np.stack([r[1] for r in good])) if good else None
        return rgb, flow, failures


class _GatheredClip:
    """A clip's DALI inputs, read from disk (and decoded by PyAV when its codec needs it)."""

    def __init__(self, request: ClipRequest, route: str, flow_length: int):
        self.request, self.route = request, route
        crop = request.crop
        y0, x0, y1, x1 = crop.roi(*request.rgb_size)
        self.rgb_roi = (np.array([y0, x0], np.float32), np.array([y1, x1], np.float32))
        y0, x0, y1, x1 = crop.roi(*request.flow_size)
        self.flow_roi = (np.array([y0, x0], np.float32), np.array([y1, x1], np.float32))
        self.mirror = np.array(int(crop.flip), np.int32)
        self.flow_std = [np.array([FLOW_CENTRE * sign], np.float32)
                         for sign in flow_channel_signs(flow_length, crop.flip)]
        self.flow_bytes = [_read_bytes(path) for path in _flow_files(request)]
        if route == "video":
            self.rgb_inputs = {"encoded": [_read_bytes(request.record.video_path)],
                               "frames": [request.starts.astype(np.int32)]}
        elif route == "frames":
            self.rgb_inputs = {"pixels": [decode_frames(request.record.video_path, request.starts)]}
        else:
            self.rgb_inputs = {"encoded": [_read_bytes(path) for path in _image_files(request)]}


class DaliBackend:
    name = "dali"

    def __init__(self, size: int, num_segments: int, flow_length: int, batch_size: int, device: str,
                 num_threads: int, seed: int):
        self.size, self.num_segments, self.flow_length, self.device = size, num_segments, flow_length, device
        self.torch_device = torch.device("cuda", torch.cuda.current_device()) if device == "gpu" else None
        images = batch_size * num_segments
        self.runner = DaliRunner(device, size, {"video": batch_size, "frames": batch_size, "jpeg_rgb": images,
                                                "jpeg_flow": images * 2 * flow_length}, num_threads, seed)
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
        return torch.empty(shape, dtype=torch.float32, device=self.torch_device)

    def _run(self, clips: list[_GatheredClip]) -> tuple[torch.Tensor, torch.Tensor]:
        """The DALI pipelines on a list of gathered clips (RuntimeError from DALI on undecodable data)."""
        n, t, channels, s = len(clips), self.num_segments, 2 * self.flow_length, self.size
        flow = self._empty(n, t, channels, s, s)
        per_image = lambda values, count: [v for v in values for _ in range(count)]  # noqa: E731
        flow_images = t * channels
        self.runner.run("jpeg_flow", {
            "encoded": [b for clip in clips for b in clip.flow_bytes],
            "roi_start": per_image([c.flow_roi[0] for c in clips], flow_images),
            "roi_end": per_image([c.flow_roi[1] for c in clips], flow_images),
            "mirror": per_image([c.mirror for c in clips], flow_images),
            "std": [std for clip in clips for _ in range(t) for std in clip.flow_std],
        }, flow.view(n * flow_images, 1, s, s))
        rgb = self._empty(n, t, 3, s, s)
        routes = sorted({clip.route for clip in clips})
        for route in routes:
            rows = [i for i, clip in enumerate(clips) if clip.route == route]
            group = [clips[i] for i in rows]
            repeat = t if route == "jpeg_rgb" else 1
            inputs = {name: [sample for clip in group for sample in clip.rgb_inputs[name]]
                      for name in group[0].rgb_inputs}
            inputs.update(roi_start=per_image([c.rgb_roi[0] for c in group], repeat),
                          roi_end=per_image([c.rgb_roi[1] for c in group], repeat),
                          mirror=per_image([c.mirror for c in group], repeat))
            target = rgb if len(routes) == 1 else self._empty(len(group), t, 3, s, s)
            # jpeg_rgb yields one [3, S, S] image per snippet; the video routes one [T, 3, S, S] clip per sample.
            self.runner.run(route, inputs, target.view(len(group) * t, 3, s, s) if route == "jpeg_rgb" else target)
            if target is not rgb:
                rgb[torch.as_tensor(rows, device=rgb.device)] = target
        return rgb, flow

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
