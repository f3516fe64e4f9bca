"""Optical-flow estimators used by the extractor.

Every estimator turns a stream of greyscale uint8 frames into the N-1 forward flows between consecutive frames,
each ``[H, W, 2]`` float32 in pixels with OpenCV's convention: ``previous[y, x] ~ next[y + fy, x + fx]``, so motion
to the right gives positive x and motion down gives positive y.

Algorithms (their costs: docs/design.md §6.2):
- ``tvl1`` (the extraction default, :data:`DEFAULT_EXTRACTION_ALGORITHM`): OpenCV-contrib Dual TV-L1 with its
  default parameters, the flow the two-stream/TSN results are reported with. Far slower than DIS on a CPU, so it is
  extracted once, for real datasets, where flow quality drives the temporal stream's accuracy.
- ``dis`` (the online default, :data:`DEFAULT_ONLINE_ALGORITHM`): OpenCV DIS with the FAST preset, cheap enough to
  compute while training. On the synthetic dataset's 64x64 videos, against the true object motion, FAST is as
  accurate as TV-L1 and better than the MEDIUM preset, whose larger patches smear small moving objects into the
  static background.
- ``farneback``: OpenCV Farneback with the usual parameters (pyramid scale 0.5, 3 levels, window 15).
- ``nvof``: NVIDIA optical-flow hardware (Turing or newer) through DALI's ``fn.optical_flow``; GPU only.
"""

from __future__ import annotations

import queue
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..errors import JnaFastError

from .names import ALGORITHMS, DEFAULT_EXTRACTION_ALGORITHM, DEFAULT_ONLINE_ALGORITHM


class FlowAlgorithmUnavailable(JnaFastError, RuntimeError):
    """The requested algorithm cannot run on this machine (e.g. ``nvof`` without an NVIDIA GPU).

    A RuntimeError (and a ``jna_fast.errors.JnaFastError``); the message says what is missing.
    """


class _PairwiseEstimator(ABC):
    """Computes flow pair by pair while frames stream in, holding only the previous frame (and, with
    ``threads > 1``, the frames of the pairs in flight)."""

    def flows(self, gray_frames: Iterable[np.ndarray], threads: int = 1) -> Iterator[np.ndarray]:
        """The forward flows of consecutive frames, in order. ``threads > 1`` computes that many pairs at once,
        each thread with its own estimator (OpenCV releases the GIL; TV-L1 itself runs on one core), so a single
        video uses every core; the results are the same as with one thread."""
        if threads > 1:
            yield from self._flows_in_threads(gray_frames, threads)
            return
        previous = None
        for frame in gray_frames:
            frame = np.ascontiguousarray(frame)
            if previous is not None:
                yield self.pair(previous, frame)
            previous = frame

    def _flows_in_threads(self, gray_frames: Iterable[np.ndarray], threads: int) -> Iterator[np.ndarray]:
        idle = queue.SimpleQueue()
        idle.put(self)
        for _ in range(threads - 1):
            idle.put(type(self)())

        def pair_on_an_idle_estimator(previous, following):
            estimator = idle.get()
            try:
                return estimator.pair(previous, following)
            finally:
                idle.put(estimator)

        in_flight: deque = deque()
        with ThreadPoolExecutor(threads, thread_name_prefix="jna_fast_flow") as pool:
            previous = None
            for frame in gray_frames:
                frame = np.ascontiguousarray(frame)
                if previous is not None:
                    in_flight.append(pool.submit(pair_on_an_idle_estimator, previous, frame))
                    if len(in_flight) >= 2 * threads:  # bounded look-ahead: memory stays O(threads) frames
                        yield in_flight.popleft().result()
                previous = frame
            while in_flight:
                yield in_flight.popleft().result()

    @abstractmethod
    def pair(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        """Forward flow ``[H, W, 2]`` float32 from ``previous`` to ``following``."""


class TVL1Estimator(_PairwiseEstimator):
    def __init__(self) -> None:
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()

    def pair(self, previous, following):
        return self._tvl1.calc(previous, following, None)


class DISEstimator(_PairwiseEstimator):
    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    def pair(self, previous, following):
        return self._dis.calc(previous, following, None)


class FarnebackEstimator(_PairwiseEstimator):
    def pair(self, previous, following):
        return cv2.calcOpticalFlowFarneback(previous, following, None, pyr_scale=0.5, levels=3, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


class NvidiaOpticalFlowEstimator:
    """DALI ``fn.optical_flow`` on the GPU's optical-flow engine.

    The whole greyscale sequence of a video is fed to a DALI pipeline as one ``FHWC`` sample; the operator returns
    the F-1 forward flows on a 4x4 grid (the grid every NVOF generation supports) with vectors already in input
    pixels, so they are upsampled bilinearly to the frame size without rescaling the values.
    """

    OUTPUT_GRID = 4

    def __init__(self, device_id: int = 0) -> None:
        try:
            from nvidia.dali import backend
        except ImportError as error:
            raise FlowAlgorithmUnavailable(
                "--algorithm nvof needs NVIDIA DALI (pip install nvidia-dali-cuda130) and an NVIDIA GPU with "
                f"optical-flow hardware; importing DALI failed: {error}") from error
        device_count = backend.GetCUDADeviceCount()
        if device_count <= device_id:
            raise FlowAlgorithmUnavailable(
                f"--algorithm nvof needs an NVIDIA GPU with optical-flow hardware (Turing or newer), but DALI sees "
                f"{device_count} CUDA device(s) on this machine; use --algorithm tvl1, dis or farneback instead")
        self._device_id = device_id
        self._pipeline = None

    def _build_pipeline(self):
        from nvidia.dali import fn, pipeline_def, types

        @pipeline_def(batch_size=1, num_threads=1, device_id=self._device_id, prefetch_queue_depth=1)
        def optical_flow_pipeline():
            frames = fn.external_source(name="frames", layout="FHWC", dtype=types.UINT8)
            return fn.optical_flow(frames.gpu(), image_type=types.GRAY, output_grid=self.OUTPUT_GRID,
                                   enable_temporal_hints=True)

        pipeline = optical_flow_pipeline()
        pipeline.build()
        return pipeline

    def flows(self, gray_frames: Iterable[np.ndarray], threads: int = 1) -> Iterator[np.ndarray]:
        """The forward flows of the whole sequence from one run of the optical-flow engine (``threads`` is for the
        CPU estimators: the engine computes the pairs itself)."""
        frames = [np.ascontiguousarray(frame) for frame in gray_frames]
        if len(frames) < 2:
            return
        if self._pipeline is None:
            self._pipeline = self._build_pipeline()
        height, width = frames[0].shape
        self._pipeline.feed_input("frames", [np.stack(frames)[..., None]])
        (grid_flows,) = self._pipeline.run()
        grid_flows = np.asarray(grid_flows.as_cpu().at(0), dtype=np.float32)
        for grid_flow in grid_flows:
            yield cv2.resize(grid_flow, (width, height), interpolation=cv2.INTER_LINEAR)


_ESTIMATORS = {
    "tvl1": TVL1Estimator,
    "dis": DISEstimator,
    "farneback": FarnebackEstimator,
    "nvof": NvidiaOpticalFlowEstimator,
}


def make_estimator(algorithm: str) -> "_PairwiseEstimator | NvidiaOpticalFlowEstimator":
    """The estimator for ``algorithm``: its ``flows(gray_frames)`` yields the forward flow of consecutive frames.

    Args:
        algorithm: one of ``ALGORITHMS``.

    Returns:
        A new estimator (not to be shared between threads); its flows are float32 ``[H, W, 2]`` (x, y) in pixels,
        from uint8 greyscale ``[H, W]`` frames.

    Raises:
        ValueError: an unknown algorithm.
        FlowAlgorithmUnavailable: the algorithm cannot run here.
    """
    if algorithm not in _ESTIMATORS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    return _ESTIMATORS[algorithm]()
