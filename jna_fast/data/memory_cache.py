"""The in-memory clip source (docs/design.md §6.9): each video of a split decoded once, its flow read (rawframes) or
computed (online) once, kept as compact arrays, so that later epochs only sample snippets, crops and flips from
memory. The arrays are exactly what the PyAV backend decodes for a clip, for every frame and flow field of the
video at once: uint8 RGB frames ``[N, H, W, 3]`` at the decoded size (from the video, or the rawframes' img files)
and the flow fields ``[F, 2, h, w]`` as the x/y JPEGs decode (uint8), or as the online computation gives them
(uint8 when quantised, float32 codes otherwise). A cached clip goes through the same ``ClipSampling.sample()``,
the same crops and the same normalisation (backends.clip_views) as a decoded one, so its tensors are bit-equal.

The size rule (``--data.memory_cache auto``): a split is cached when its decoded size, estimated from the probed frame
counts and sizes before anything is decoded, fits under the limit; ``on`` caches whatever the size, ``off`` never.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..flow.online import OnlineFlow
from ..io.errors import DataError
from .backends import online_clip_uint8, read_flow_images, rgb_frames_uint8
from .batch import ClipRequest
from .loader_settings import MIB
from .options import MEMORY_CACHE_MODES

logger = logging.getLogger("jna_fast.data")

def whole_video(request: ClipRequest, num_frames: int, num_flows: int) -> ClipRequest:
    """A request of every frame and flow field of ``request``'s video: its ``num_frames`` usable frames (from
    ``first_frame`` on) and its ``num_flows`` flow fields, no view."""
    return replace(request, starts=np.arange(num_frames, dtype=np.int64) + request.first_frame,
                   flows=np.arange(num_flows, dtype=np.int64)[None], mask=np.ones(num_frames, bool), crops=())


def video_extent(request: ClipRequest) -> tuple[int, int]:
    """(usable frames, flow fields) of a request's video, as the loader's source says: a rawframes folder's flow
    fields and its frames from ``first_frame`` on, or a video's frames and one flow field fewer (online flow)."""
    if request.folder is not None:
        return request.folder.num_flows + 1 - request.first_frame, request.folder.num_flows
    return request.video.num_frames, request.video.num_frames - 1


def video_bytes(request: ClipRequest, float_flow: bool = False) -> int:
    """The bytes the cache holds for a request's video (its frames and flow fields, by the probed counts and
    sizes); ``float_flow``: online flow kept unquantised (float32)."""
    frames, flows = video_extent(request)
    (height, width), (flow_height, flow_width) = request.rgb_size, request.flow_size
    return frames * height * width * 3 + flows * 2 * flow_height * flow_width * (4 if float_flow else 1)


def use_memory_cache(mode: str, estimate: int, limit: int) -> bool:
    """Whether to cache a split of ``estimate`` bytes (a lower bound where the estimate stopped early) under
    ``limit`` bytes: ``on`` always, ``off`` never, ``auto`` when it fits."""
    if mode not in MEMORY_CACHE_MODES:
        raise ValueError(f"memory_cache must be one of {MEMORY_CACHE_MODES}, got {mode!r}")
    return mode == "on" or (mode == "auto" and estimate <= limit)


@dataclass(frozen=True)
class CachedVideo:
    """A video's pixels in memory: ``frames`` [N, H, W, 3] uint8 (video frame ``first_frame + i`` at row i) and
    ``flows`` [F, 2, h, w] (flow field k at row k, its x and y planes)."""

    frames: np.ndarray
    flows: np.ndarray
    first_frame: int

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.flows.nbytes


class MemoryCache:
    """The decoded videos of a loader, filled on first use of each (thread-safe: the loader's threads fill
    distinct videos at once) and kept for the run. A video that fails to load keeps its error, raised again at
    each use, as the decoding path would raise it."""

    def __init__(self, online_flow: OnlineFlow | None = None):
        self.online_flow = online_flow
        self._videos: dict[tuple, CachedVideo | DataError] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def _key(request: ClipRequest) -> tuple:
        return str(request.record.video_path), str(request.record.frames_dir)

    def __len__(self) -> int:
        return sum(isinstance(video, CachedVideo) for video in self._videos.values())

    @property
    def nbytes(self) -> int:
        return sum(video.nbytes for video in self._videos.values() if isinstance(video, CachedVideo))

    def _load(self, request: ClipRequest) -> CachedVideo:
        """Every frame and flow field of the request's video, decoded by the PyAV backend's own functions."""
        frames, flows = video_extent(request)
        whole = whole_video(request, frames, flows)
        if request.folder is None:
            rgb, stacks = online_clip_uint8(whole, self.online_flow)
            flow = stacks.reshape(flows, 2, *stacks.shape[2:])
        else:
            rgb = rgb_frames_uint8(whole)
            flow = np.stack(read_flow_images(whole)).reshape(flows, 2, *request.flow_size)
        return CachedVideo(np.ascontiguousarray(rgb), np.ascontiguousarray(flow), request.first_frame)

    def video(self, request: ClipRequest) -> CachedVideo:
        """The request's video from memory, loaded on first use."""
        key = self._key(request)
        found = self._videos.get(key)
        if found is None:
            with self._guard:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                found = self._videos.get(key)
                if found is None:
                    try:
                        found = self._load(request)
                    except DataError as error:
                        found = error
                    self._videos[key] = found
        if isinstance(found, DataError):
            raise found
        return found

    def _try(self, request: ClipRequest) -> None:
        try:
            self.video(request)
        except DataError:
            pass  # kept: raised for the clips that ask for this video

    def fill(self, requests, threads: int) -> None:
        """Loads the videos of ``requests`` not held yet, ``threads`` at a time (a failure is kept for its clips)."""
        began, videos, held = time.perf_counter(), len(self), self.nbytes
        with ThreadPoolExecutor(threads, thread_name_prefix="jna_fast_cache") as pool:
            list(pool.map(self._try, requests))
        if len(self) > videos:
            logger.info("cached %d videos (%.0f MiB) in memory in %.1f s", len(self) - videos,
                        (self.nbytes - held) / MIB, time.perf_counter() - began)

    def pixels(self, request: ClipRequest) -> tuple[np.ndarray, np.ndarray]:
        """A clip's RGB frames [T, H, W, 3] and flow images [T * 2L, h, w] (a snippet's stack in channel order:
        x_i, y_i, x_{i+1}, ...), as the decoding path gives them, from memory."""
        video = self.video(request)
        frames = video.frames[np.asarray(request.starts) - video.first_frame]
        flows = video.flows[np.asarray(request.flows).reshape(-1)]
        return frames, flows.reshape(-1, *flows.shape[2:])


def split_estimate(requests, stop_above: int | None = None, float_flow: bool = False) -> tuple[int, int]:
    """(bytes, videos) the cache would hold for the videos of ``requests``, from their probed counts and sizes;
    the count stops once the bytes pass ``stop_above`` (a lower bound is enough to refuse)."""
    total = videos = 0
    for request in requests:
        total += video_bytes(request, float_flow)
        videos += 1
        if stop_above is not None and total > stop_above:
            break
    return total, videos
