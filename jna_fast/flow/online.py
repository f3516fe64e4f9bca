"""Optical flow computed on the fly from decoded frames, encoded as the extractor encodes it (no rawframes on disk).

``encoded_flow_stacks(frames, flow_indices, estimator=...)`` turns the RGB frames of one video into its flow
stacks: flow field k is the motion from frame k to frame k+1, estimated on the greyscale frames exactly as
``python -m jna_fast.flow extract`` does (same estimators, same RGB -> grey conversion) and put on the 0..255
scale of the 8-bit encoding (encoding.py). With ``quantise=True`` (the default) the values are rounded to the
same uint8 grid as the flow JPEGs, so a loader reading flow online and one reading extracted rawframes agree up
to the JPEG compression of the latter; ``quantise=False`` keeps the unrounded float32 values (finer than the
rawframes, at no extra cost).

:class:`OnlineFlow` is what the loader (``build_loader(..., flow=FlowSource.online())``) and single-video prediction
hold: the algorithm, the bound and one estimator per thread (OpenCV's estimators keep per-instance buffers and must
not be shared between threads; they release the GIL while they compute, so a thread pool uses several cores).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import cv2
import numpy as np

from .algorithms import (ALGORITHMS, DEFAULT_ONLINE_ALGORITHM, NvidiaOpticalFlowEstimator, _PairwiseEstimator,
                         make_estimator)
from .encoding import DEFAULT_BOUND, check_bound, encode_component, scale_component

def frames_for_flows(flow_indices: np.ndarray) -> np.ndarray:
    """The frames whose pixels the flow fields ``flow_indices`` need: k and k+1 for each field k.

    Args:
        flow_indices: 0-based flow field indices, any shape.

    Returns:
        int64, sorted unique 0-based frame indices.
    """
    flows = np.unique(np.asarray(flow_indices, dtype=np.int64))
    return np.union1d(flows, flows + 1)


def _consecutive_runs(values: np.ndarray) -> list[np.ndarray]:
    """Sorted unique ``values`` split into runs of consecutive integers."""
    return np.split(values, np.flatnonzero(np.diff(values) != 1) + 1)


def encoded_flow_stacks(frames: Mapping[int, np.ndarray], flow_indices: np.ndarray, *,
                        estimator: _PairwiseEstimator | NvidiaOpticalFlowEstimator, bound: float = DEFAULT_BOUND,
                        quantise: bool = True) -> np.ndarray:
    """The flow stacks of one clip, computed from its frames and put on the 0..255 scale of the encoding.

    Each distinct flow field is estimated once; consecutive ones go to the estimator as one sequence (temporal
    hints for nvof).

    Args:
        frames: 0-based frame index -> uint8 RGB ``[H, W, 3]``, holding at least
            ``frames_for_flows(flow_indices)``.
        flow_indices: ``[T, L]`` 0-based flow fields (field k: from frame k to k+1), non-empty.
        estimator: this thread's estimator (:func:`make_estimator`).
        bound: the clip in pixels, > 0.
        quantise: round to the uint8 grid of the flow JPEGs.

    Returns:
        ``[T, 2L, H, W]`` (interleaved x, y): uint8 when ``quantise``, else float32 on the 0..255 scale.

    Raises:
        ValueError: ``flow_indices`` not a non-empty 2-D array, a needed frame missing, or a bad ``bound``.
    """
    bound = check_bound(bound)
    flow_indices = np.asarray(flow_indices, dtype=np.int64)
    if flow_indices.ndim != 2 or flow_indices.size == 0:
        raise ValueError(f"flow_indices must be a non-empty [T, L] array, got shape {flow_indices.shape}")
    missing = [int(i) for i in frames_for_flows(flow_indices) if int(i) not in frames]
    if missing:
        raise ValueError(f"frames {missing} are needed for the flow fields {sorted(set(flow_indices.flat))}")
    to_component = encode_component if quantise else scale_component
    components: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for run in _consecutive_runs(np.unique(flow_indices)):
        grey = (cv2.cvtColor(frames[int(i)], cv2.COLOR_RGB2GRAY) for i in range(int(run[0]), int(run[-1]) + 2))
        for index, flow in zip(run, estimator.flows(grey)):
            components[int(index)] = (to_component(flow[..., 0], bound), to_component(flow[..., 1], bound))
    return np.stack([np.stack([component for flow in stack for component in components[int(flow)]])
                     for stack in flow_indices])


class OnlineFlow:
    """Flow of the loader's clips computed from their decoded frames (see the module docstring).

    Args:
        algorithm: one of ``ALGORITHMS`` (default ``DEFAULT_ONLINE_ALGORITHM``).
        bound: the clip in pixels, > 0.
        quantise: round to the uint8 grid of the flow JPEGs (else float32 on the 0..255 scale).

    Raises:
        ValueError: an unknown algorithm or a bad ``bound``.
        FlowAlgorithmUnavailable: the algorithm cannot run here (checked now, not in a worker).
    """

    def __init__(self, algorithm: str = DEFAULT_ONLINE_ALGORITHM, bound: float = DEFAULT_BOUND,
                 quantise: bool = True):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"flow_algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
        self.algorithm, self.bound, self.quantise = algorithm, check_bound(bound), bool(quantise)
        self._local = threading.local()
        self._local.estimator = make_estimator(algorithm)  # fails here, not in a worker, e.g. nvof without a GPU

    def estimator(self):
        """This thread's estimator (built on first use)."""
        if getattr(self._local, "estimator", None) is None:
            self._local.estimator = make_estimator(self.algorithm)
        return self._local.estimator

    def stacks(self, frames: Mapping[int, np.ndarray], flow_indices: np.ndarray) -> np.ndarray:
        """:func:`encoded_flow_stacks` with this thread's estimator and the configured bound and quantisation.

        Args:
            frames: 0-based frame index -> uint8 RGB ``[H, W, 3]``.
            flow_indices: ``[T, L]`` 0-based flow fields.

        Returns:
            ``[T, 2L, H, W]``: uint8, or float32 without quantisation.
        """
        return encoded_flow_stacks(frames, flow_indices, estimator=self.estimator(), bound=self.bound,
                                   quantise=self.quantise)

    def __repr__(self) -> str:
        return f"OnlineFlow(algorithm={self.algorithm!r}, bound={self.bound:g}, quantise={self.quantise})"
